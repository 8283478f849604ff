"""Stem models: trained models published as TF.js weights, the champion gate, and "latest"."""
