"""Dataset statistics: SQL aggregates over snapshots, rejections, runs and datasets."""
