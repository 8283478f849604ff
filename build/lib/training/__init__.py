"""Pure, typed NumPy/Keras code for the stem model: no web or database imports here."""
