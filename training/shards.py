"""A dataset on disk: each split as .npz shards of SHARD_SIZE rows (features, targets, weights,
bounds and the snapshots' ids), listed per split in the dataset's manifest.json. Written by
app/datasets/service.py, read by the training pipeline: the format lives here, once."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.features import Split

SHARD_SIZE = 256  # 256 x 150 x 84 float32 features (~13 MB) plus targets, weights and bounds a shard


@dataclass
class ShardWriter:
    """Writes one split's rows as shards of SHARD_SIZE rows, named <split>-00000.npz, ..."""

    directory: Path
    split: str
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bytes]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, features: np.ndarray, targets: np.ndarray, weights: np.ndarray, bounds: np.ndarray, snapshot_id: bytes) -> None:
        self.rows.append((features, targets, weights, bounds, snapshot_id))
        self.count += 1
        if len(self.rows) >= SHARD_SIZE:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        features, targets, weights, bounds, ids = zip(*self.rows, strict=True)
        name = f"{self.split}-{len(self.files):05d}.npz"
        # ids as [n, 16] bytes: a fixed-width bytes array would drop an id's trailing NULs.
        np.savez(
            self.directory / name,
            features=np.stack(features),
            targets=np.stack(targets),
            weights=np.stack(weights),
            bounds=np.stack(bounds),
            ids=np.frombuffer(b"".join(ids), np.uint8).reshape(-1, 16),
        )
        self.files.append(name)
        self.rows.clear()


def load_split(directory: Path, split: str) -> Split:
    """A dataset split as arrays, from its shards."""
    manifest = json.loads((directory / "manifest.json").read_text())
    shards = [np.load(directory / name) for name in manifest["shards"].get(split, [])]
    if not shards:
        return Split.empty()
    return Split(*(np.concatenate([s[key] for s in shards]) for key in ("features", "targets", "weights", "bounds")))
