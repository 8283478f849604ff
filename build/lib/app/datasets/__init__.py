"""Datasets: versioned, hashed snapshots-with-ground-truth, as binary shards ready to train on."""
