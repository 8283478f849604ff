"""Training runs: one pipeline execution (dataset, training, evaluation), its state and progress."""
