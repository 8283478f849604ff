"""Stored snapshots. Scalars that stats and dataset builds filter on are indexed columns;
feature streams and ground-truth stems are float32 blobs (see arrays.py)."""

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class Snapshot(Base):
    __tablename__ = "snapshots"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))  # indexed by ix_snapshots_channel_received_at
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    # The Studio deployment that sent it (scheme://host[:port] of the Origin header).
    origin: Mapped[str | None] = mapped_column(String(255))
    # SHA-256 over everything stored except the id: same id + same hash = a retry. Read by id,
    # so not indexed (see migration 0008).
    content_hash: Mapped[str] = mapped_column(String(64))
    duplicates_absorbed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    client_timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    duration_s: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(SmallInteger)

    classification: Mapped[str] = mapped_column(String(32), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    processing_time_ms: Mapped[float] = mapped_column(Float)

    key: Mapped[str] = mapped_column(String(2), index=True)
    mode: Mapped[str | None] = mapped_column(String(5))
    bpm: Mapped[float | None] = mapped_column(Float, index=True)
    tension: Mapped[float] = mapped_column(Float)
    # Transient timings are not kept: only how many and how dense (per second).
    transient_count: Mapped[int] = mapped_column(Integer)
    transient_density: Mapped[float] = mapped_column(Float)
    transient_mean_strength: Mapped[float | None] = mapped_column(Float)
    dominant_frequencies: Mapped[bytes] = mapped_column(LargeBinary)

    spectral: Mapped[bytes] = mapped_column(LargeBinary)
    temporal: Mapped[bytes] = mapped_column(LargeBinary)
    harmonic: Mapped[bytes] = mapped_column(LargeBinary)
    percussive: Mapped[bytes] = mapped_column(LargeBinary)
    stereo: Mapped[bytes] = mapped_column(LargeBinary)
    energy: Mapped[bytes] = mapped_column(LargeBinary)

    has_ground_truth: Mapped[bool] = mapped_column(Boolean, index=True)
    gt_vocals: Mapped[bytes | None] = mapped_column(LargeBinary)
    gt_drums: Mapped[bytes | None] = mapped_column(LargeBinary)
    gt_bass: Mapped[bytes | None] = mapped_column(LargeBinary)
    gt_harmonic: Mapped[bytes | None] = mapped_column(LargeBinary)
    gt_perc: Mapped[bytes | None] = mapped_column(LargeBinary)
    gt_sub: Mapped[bytes | None] = mapped_column(LargeBinary)

    correction_count: Mapped[int] = mapped_column(Integer, default=0)
    # Studio's NaN/inf arrive as null: how many, over all arrays.
    null_count: Mapped[int] = mapped_column(Integer, default=0)
    # Which sanitiser rules changed this snapshot, and how often: {"rule": count}.
    sanitizer_rules: Mapped[dict] = mapped_column(JSON, default=dict)

    # Serves queries on channel alone too (its leading column), so channel has no index of its own.
    __table_args__ = (Index("ix_snapshots_channel_received_at", "channel", "received_at"),)


class SnapshotCorrection(Base):
    """A user's correction of one stem: a row each, so stats can group by stem and type."""

    __tablename__ = "snapshot_corrections"

    snapshot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    stem: Mapped[str] = mapped_column(String(16), index=True)
    correction_type: Mapped[str] = mapped_column(String(16), index=True)
    frequency_low_hz: Mapped[float | None] = mapped_column(Float)
    frequency_high_hz: Mapped[float | None] = mapped_column(Float)
    time_start_s: Mapped[float | None] = mapped_column(Float)
    time_end_s: Mapped[float | None] = mapped_column(Float)
    strength: Mapped[float] = mapped_column(Float)
