"""Building datasets from stored snapshots, and reading them back for training.

Snapshots with ground truth are streamed from the database in id order (a server-side cursor
on Postgres), encoded (training/features.py) and written as .npz shards of SHARD_SIZE rows per
split, so memory does not grow with the number of snapshots. The split is decided by the
snapshot id alone, so it never changes when snapshots are added. The dataset's hash covers the
feature version, the split ratio and every member's id and content hash.
"""

import hashlib
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.models import Dataset
from app.snapshots import arrays
from app.snapshots.models import Snapshot
from training.features import (
    FEATURE_DIM,
    FEATURE_VERSION,
    SEQUENCE_LENGTH,
    STEMS,
    STREAMS,
    SnapshotArrays,
    Split,
    encode_features,
    encode_targets,
)

SHARD_SIZE = 1024
SPLITS = ("train", "validation")
STREAM_BATCH = 256
_COLUMNS = [
    Snapshot.id, Snapshot.content_hash, Snapshot.classification, Snapshot.key, Snapshot.mode, Snapshot.bpm,
    Snapshot.transient_density, Snapshot.tension, Snapshot.duration_s, Snapshot.channels, Snapshot.confidence,
    Snapshot.energy, *(getattr(Snapshot, s) for s in STREAMS), *(getattr(Snapshot, f"gt_{s}") for s in STEMS),
]  # fmt: skip


def split_of(snapshot_id: str, train_ratio: float) -> str:
    """'train' or 'validation', from the id alone: stable as the data grows."""
    bucket = int.from_bytes(hashlib.sha256(snapshot_id.encode()).digest()[:8], "big") / 2**64
    return "train" if bucket < train_ratio else "validation"


@dataclass
class _ShardWriter:
    directory: Path
    split: str
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, bytes]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, features: np.ndarray, targets: np.ndarray, mask: np.ndarray, snapshot_id: bytes) -> None:
        self.rows.append((features, targets, mask, snapshot_id))
        self.count += 1
        if len(self.rows) >= SHARD_SIZE:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        features, targets, masks, ids = zip(*self.rows, strict=True)
        name = f"{self.split}-{len(self.files):05d}.npz"
        np.savez(self.directory / name, features=np.stack(features), targets=np.stack(targets),
                 masks=np.stack(masks), ids=np.array(ids, dtype="S16"))  # fmt: skip
        self.files.append(name)
        self.rows.clear()


@dataclass
class _Audit:
    silent_ground_truth: Counter = field(default_factory=Counter)  # per stem
    constant_ground_truth: Counter = field(default_factory=Counter)
    degenerate_streams: Counter = field(default_factory=Counter)  # empty, all-null or constant
    duplicate_content: int = 0

    def check(self, streams: dict[str, np.ndarray], truth: dict[str, np.ndarray | None]) -> None:
        for name, values in streams.items():
            finite = values[np.isfinite(values)]
            if len(finite) == 0 or (len(finite) > 1 and np.ptp(finite) == 0 and name != "stereo"):
                self.degenerate_streams[name] += 1
        for stem, values in truth.items():
            if values is None:
                continue
            finite = values[np.isfinite(values)]
            if len(finite) == 0 or np.abs(finite).max() < 1e-6:
                self.silent_ground_truth[stem] += 1
            elif np.ptp(finite) == 0:
                self.constant_ground_truth[stem] += 1

    def as_dict(self) -> dict:
        return {
            "silent_ground_truth": dict(self.silent_ground_truth),
            "constant_ground_truth": dict(self.constant_ground_truth),
            "degenerate_streams": dict(self.degenerate_streams),
            "duplicate_content_skipped": self.duplicate_content,
        }


def build_dataset(session: Session, output_root: Path, run_label: str, train_ratio: float = 0.8) -> Dataset:
    """Builds (or finds, when the same one exists) the dataset of every snapshot with ground
    truth. Returns the stored Dataset row; commits it."""
    if not 0.0 < train_ratio < 1.0:
        raise ValueError(f"train_ratio must be between 0 and 1, got {train_ratio}")
    staging = output_root / f".building-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
    staging.mkdir(parents=True)
    writers = {split: _ShardWriter(staging, split) for split in SPLITS}
    digest = hashlib.sha256(f"{FEATURE_VERSION}|{train_ratio!r}|".encode())
    audit = _Audit()
    classifications: Counter = Counter()
    coverage: Counter = Counter()
    seen_content: set[bytes] = set()  # 8 bytes a member: 160 KB at 20,000 snapshots

    query = select(*_COLUMNS).where(Snapshot.has_ground_truth.is_(True)).order_by(Snapshot.id)
    result = session.execute(query, execution_options={"stream_results": True, "yield_per": STREAM_BATCH})
    for row in result:
        content_key = bytes.fromhex(row.content_hash[:16])
        if content_key in seen_content:
            audit.duplicate_content += 1
            continue
        seen_content.add(content_key)
        snapshot_id = str(row.id)
        digest.update(f"{snapshot_id}:{row.content_hash}\n".encode())
        streams = {name: arrays.unpack(getattr(row, name)) for name in STREAMS}
        truth = {stem: (arrays.unpack(blob) if (blob := getattr(row, f"gt_{stem}")) is not None else None) for stem in STEMS}
        audit.check(streams, truth)
        snapshot = SnapshotArrays(
            streams=streams, energy=arrays.unpack(row.energy), key=row.key, mode=row.mode, bpm=row.bpm,
            transient_density=row.transient_density, tension=row.tension, duration_s=row.duration_s,
            channels=row.channels, confidence=row.confidence, ground_truth=truth,
        )  # fmt: skip
        targets, mask = encode_targets(truth)
        writers[split_of(snapshot_id, train_ratio)].add(encode_features(snapshot), targets, mask, row.id.bytes)
        classifications[row.classification] += 1
        coverage.update(stem for stem, values in truth.items() if values is not None)
    for writer in writers.values():
        writer.flush()

    content_hash = digest.hexdigest()
    existing = session.scalar(select(Dataset).where(Dataset.content_hash == content_hash))
    if existing is not None:
        shutil.rmtree(staging)
        return existing
    directory = output_root / content_hash[:16]
    manifest = {
        "run_label": run_label,
        "created_at": datetime.now(UTC).isoformat(),
        "content_hash": content_hash,
        "feature_version": FEATURE_VERSION,
        "encoding": {"sequence_length": SEQUENCE_LENGTH, "feature_dim": FEATURE_DIM, "stems": list(STEMS)},
        "train_ratio": train_ratio,
        "counts": {split: writers[split].count for split in SPLITS} | {"total": sum(w.count for w in writers.values())},
        "classification_distribution": dict(classifications),
        "stem_coverage": {stem: coverage[stem] for stem in STEMS},
        "audit": audit.as_dict(),
        "shards": {split: writers[split].files for split in SPLITS},
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if directory.exists():  # left by a build that died before recording it
        shutil.rmtree(directory)
    staging.rename(directory)
    dataset = Dataset(
        content_hash=content_hash, run_label=run_label, feature_version=FEATURE_VERSION, train_ratio=train_ratio,
        train_count=writers["train"].count, validation_count=writers["validation"].count, path=str(directory),
        manifest=manifest,
    )  # fmt: skip
    session.add(dataset)
    session.commit()
    return dataset


def load_split(directory: Path, split: str) -> Split:
    """A dataset split as arrays, from its shards."""
    manifest = json.loads((directory / "manifest.json").read_text())
    shards = [np.load(directory / name) for name in manifest["shards"][split]]
    if not shards:
        shape = manifest["encoding"]
        return Split(
            np.zeros((0, shape["sequence_length"], shape["feature_dim"]), np.float32),
            np.zeros((0, len(STEMS), shape["sequence_length"]), np.float32),
            np.zeros((0, len(STEMS)), np.float32),
        )
    return Split(*(np.concatenate([s[key] for s in shards]) for key in ("features", "targets", "masks")))
