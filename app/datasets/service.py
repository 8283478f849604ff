"""Building datasets from stored snapshots.

Snapshots with a label are streamed from the database in id order (a server-side cursor on
Postgres): ground truth (imported multitracks), users' corrections (Studio's own traffic; each
bounds a stem's level over a stretch), or both. They are encoded (training/features.py) and
written as .npz shards per split (training/shards.py), so memory does not grow with the number of
snapshots. The split (train, validation for
model selection, test for the report and the gate) is decided by the snapshot id alone, so it
never changes when snapshots are added. The dataset's hash covers the feature version, the
split shares and every member's id and content hash.
"""

import hashlib
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.artifacts import ArtifactStore
from app.datasets.models import Dataset
from app.snapshots import arrays
from app.snapshots.models import Snapshot, SnapshotCorrection
from training.contract import STEMS, STREAMS
from training.features import (
    FEATURE_DIM,
    FEATURE_VERSION,
    MAX_STEPS,
    NO_BOUND,
    SPLITS,
    Correction,
    SnapshotArrays,
    encode_bounds,
    encode_features,
    encode_targets,
    split_of,
)
from training.shards import ShardWriter

STREAM_BATCH = 256
_COLUMNS = [
    Snapshot.id,
    Snapshot.content_hash,
    Snapshot.classification,
    Snapshot.key,
    Snapshot.mode,
    Snapshot.bpm,
    Snapshot.transient_density,
    Snapshot.tension,
    Snapshot.duration_s,
    Snapshot.sample_rate,
    Snapshot.channels,
    Snapshot.confidence,
    Snapshot.energy,
    *(getattr(Snapshot, s) for s in STREAMS),
    *(getattr(Snapshot, f"gt_{s}") for s in STEMS),
]


@dataclass
class _Audit:
    silent_ground_truth: Counter = field(default_factory=Counter)  # per stem
    constant_ground_truth: Counter = field(default_factory=Counter)
    degenerate_streams: Counter = field(default_factory=Counter)  # empty, all-null or constant
    duplicate_content: int = 0
    no_signal: int = 0

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
            "no_signal_skipped": self.no_signal,
        }


def _corrections(session: Session) -> dict:
    """Every stored correction, by snapshot id (read before the snapshots' stream, which holds
    the connection's cursor): bounded by the corrections stored, ~100 bytes each."""
    query = select(SnapshotCorrection).order_by(SnapshotCorrection.snapshot_id, SnapshotCorrection.position)
    found: dict = {}
    rows = session.execute(query).scalars()
    for c in rows:
        found.setdefault(c.snapshot_id, []).append(
            Correction(c.stem, c.correction_type, c.time_start_s, c.time_end_s, c.strength)
        )
    return found


def get(dataset_id: int, *, db_session: Session) -> Dataset | None:
    return db_session.get(Dataset, dataset_id)


def get_all(*, db_session: Session, limit: int = 50) -> list[Dataset]:
    """Datasets, newest first."""
    return list(db_session.scalars(select(Dataset).order_by(Dataset.id.desc()).limit(limit)))


def build_dataset(
    store: ArtifactStore, run_label: str, validation_share: float = 0.15, test_share: float = 0.15, *, db_session: Session
) -> Dataset:
    """Builds (or finds, when the same one exists) the dataset of every snapshot with ground
    truth, and puts its shards in the artifact store. Returns the stored Dataset row; commits it."""
    if not (0.0 < validation_share < 0.5 and 0.0 < test_share < 0.5 and validation_share + test_share < 0.9):
        raise ValueError(f"validation and test shares must each be in (0, 0.5), got {validation_share}, {test_share}")
    train_ratio = 1.0 - validation_share - test_share
    output_root = store.local("datasets")
    staging = output_root / f".building-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
    staging.mkdir(parents=True)
    writers = {split: ShardWriter(staging, split) for split in SPLITS}
    digest = hashlib.sha256(f"{FEATURE_VERSION}|{validation_share!r}|{test_share!r}|".encode())
    audit = _Audit()
    classifications: Counter = Counter()
    coverage: Counter = Counter()
    seen_content: set[bytes] = set()  # 8 bytes a member: 160 KB at 20,000 snapshots
    corrected = 0
    corrections_only: Counter = Counter()  # per split: snapshots whose only label is corrections

    corrections_of = _corrections(db_session)
    # Snapshots with ground truth, and those whose only label is users' corrections.
    query = select(*_COLUMNS).where(Snapshot.has_ground_truth.is_(True) | (Snapshot.correction_count > 0)).order_by(Snapshot.id)
    result = db_session.execute(query, execution_options={"stream_results": True, "yield_per": STREAM_BATCH})
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
            streams=streams,
            energy=arrays.unpack(row.energy),
            key=row.key,
            mode=row.mode,
            bpm=row.bpm,
            transient_density=row.transient_density,
            tension=row.tension,
            duration_s=row.duration_s,
            sample_rate=row.sample_rate,
            channels=row.channels,
            confidence=row.confidence,
            ground_truth=truth,
            corrections=tuple(corrections_of.get(row.id, ())),
        )
        targets, weights = encode_targets(snapshot)
        bounds = encode_bounds(snapshot)
        if not weights.any() and not (bounds[..., 0] > NO_BOUND[0]).any() and not (bounds[..., 1] < NO_BOUND[1]).any():
            audit.no_signal += 1  # e.g. a silent mix, or corrections of nothing in the track
            continue
        corrected += bool(snapshot.corrections)
        split = split_of(snapshot_id, validation_share, test_share)
        corrections_only[split] += not weights.any()
        writer = writers[split]
        writer.add(encode_features(snapshot), targets, weights, bounds, row.id.bytes)
        classifications[row.classification] += 1
        coverage.update(stem for stem, values in truth.items() if values is not None)
    for writer in writers.values():
        writer.flush()

    content_hash = digest.hexdigest()
    existing = db_session.scalar(select(Dataset).where(Dataset.content_hash == content_hash))
    if existing is not None:
        shutil.rmtree(staging)
        return existing
    key = f"datasets/{content_hash[:16]}"
    directory = store.local(key)
    manifest = {
        "run_label": run_label,
        "created_at": datetime.now(UTC).isoformat(),
        "content_hash": content_hash,
        "feature_version": FEATURE_VERSION,
        "encoding": {"steps": MAX_STEPS, "feature_dim": FEATURE_DIM, "stems": list(STEMS)},
        "shares": {"train": train_ratio, "validation": validation_share, "test": test_share},
        "counts": {split: writers[split].count for split in SPLITS} | {"total": sum(w.count for w in writers.values())},
        "classification_distribution": dict(classifications),
        "stem_coverage": {stem: coverage[stem] for stem in STEMS},
        "with_corrections": corrected,
        "corrections_only": {split: corrections_only[split] for split in SPLITS},
        "audit": audit.as_dict(),
        "shards": {split: writers[split].files for split in SPLITS},
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if directory.exists():  # left by a build that died before recording it
        shutil.rmtree(directory)
    staging.rename(directory)
    store.push(key)  # before the row: a row never names files the store lacks
    dataset = Dataset(
        content_hash=content_hash,
        run_label=run_label,
        feature_version=FEATURE_VERSION,
        train_ratio=train_ratio,
        train_count=writers["train"].count,
        validation_count=writers["validation"].count,
        test_count=writers["test"].count,
        artifact_key=key,
        manifest=manifest,
    )
    db_session.add(dataset)
    db_session.commit()
    return dataset
