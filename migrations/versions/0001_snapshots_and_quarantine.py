"""snapshots and quarantine

Revision ID: 0001
Revises:
Create Date: 2026-11-21 05:19:59.235415
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.Column("occurrences", sa.Integer(), server_default="1", nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("origin", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=128), nullable=True),
        sa.Column("content_encoding", sa.String(length=32), nullable=True),
        sa.Column("http_status", sa.SmallInteger(), nullable=False),
        sa.Column("reason_type", sa.String(length=64), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("snapshot_id", sa.String(length=36), nullable=True),
        sa.Column("item_index", sa.Integer(), nullable=True),
        sa.Column("body_size", sa.Integer(), nullable=False),
        sa.Column("body_excerpt", sa.Text(), nullable=False),
        sa.Column("body_truncated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_quarantine_fingerprint")),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quarantine_channel"), ["channel"], unique=False)
        batch_op.create_index(batch_op.f("ix_quarantine_first_seen_at"), ["first_seen_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_quarantine_http_status"), ["http_status"], unique=False)
        batch_op.create_index(batch_op.f("ix_quarantine_reason_type"), ["reason_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_quarantine_snapshot_id"), ["snapshot_id"], unique=False)

    op.create_table(
        "snapshots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("duplicates_absorbed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("client_timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("channels", sa.SmallInteger(), nullable=False),
        sa.Column("classification", sa.String(length=32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("processing_time_ms", sa.Float(), nullable=False),
        sa.Column("key", sa.String(length=2), nullable=False),
        sa.Column("mode", sa.String(length=5), nullable=True),
        sa.Column("bpm", sa.Float(), nullable=True),
        sa.Column("tension", sa.Float(), nullable=False),
        sa.Column("transient_count", sa.Integer(), nullable=False),
        sa.Column("transient_density", sa.Float(), nullable=False),
        sa.Column("transient_mean_strength", sa.Float(), nullable=True),
        sa.Column("dominant_frequencies", sa.LargeBinary(), nullable=False),
        sa.Column("spectral", sa.LargeBinary(), nullable=False),
        sa.Column("temporal", sa.LargeBinary(), nullable=False),
        sa.Column("harmonic", sa.LargeBinary(), nullable=False),
        sa.Column("percussive", sa.LargeBinary(), nullable=False),
        sa.Column("stereo", sa.LargeBinary(), nullable=False),
        sa.Column("energy", sa.LargeBinary(), nullable=False),
        sa.Column("has_ground_truth", sa.Boolean(), nullable=False),
        sa.Column("gt_vocals", sa.LargeBinary(), nullable=True),
        sa.Column("gt_drums", sa.LargeBinary(), nullable=True),
        sa.Column("gt_bass", sa.LargeBinary(), nullable=True),
        sa.Column("gt_harmonic", sa.LargeBinary(), nullable=True),
        sa.Column("gt_perc", sa.LargeBinary(), nullable=True),
        sa.Column("gt_sub", sa.LargeBinary(), nullable=True),
        sa.Column("correction_count", sa.Integer(), nullable=False),
        sa.Column("null_count", sa.Integer(), nullable=False),
        sa.Column("sanitizer_rules", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
    )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_snapshots_bpm"), ["bpm"], unique=False)
        batch_op.create_index(batch_op.f("ix_snapshots_channel"), ["channel"], unique=False)
        batch_op.create_index("ix_snapshots_channel_received_at", ["channel", "received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_snapshots_classification"), ["classification"], unique=False)
        batch_op.create_index(batch_op.f("ix_snapshots_content_hash"), ["content_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_snapshots_has_ground_truth"), ["has_ground_truth"], unique=False)
        batch_op.create_index(batch_op.f("ix_snapshots_key"), ["key"], unique=False)
        batch_op.create_index(batch_op.f("ix_snapshots_received_at"), ["received_at"], unique=False)

    op.create_table(
        "snapshot_corrections",
        sa.Column("snapshot_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("stem", sa.String(length=16), nullable=False),
        sa.Column("correction_type", sa.String(length=16), nullable=False),
        sa.Column("frequency_low_hz", sa.Float(), nullable=True),
        sa.Column("frequency_high_hz", sa.Float(), nullable=True),
        sa.Column("time_start_s", sa.Float(), nullable=True),
        sa.Column("time_end_s", sa.Float(), nullable=True),
        sa.Column("strength", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["snapshots.id"], name=op.f("fk_snapshot_corrections_snapshot_id_snapshots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "position", name=op.f("pk_snapshot_corrections")),
    )
    with op.batch_alter_table("snapshot_corrections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_snapshot_corrections_correction_type"), ["correction_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_snapshot_corrections_stem"), ["stem"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("snapshot_corrections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshot_corrections_stem"))
        batch_op.drop_index(batch_op.f("ix_snapshot_corrections_correction_type"))

    op.drop_table("snapshot_corrections")
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshots_received_at"))
        batch_op.drop_index(batch_op.f("ix_snapshots_key"))
        batch_op.drop_index(batch_op.f("ix_snapshots_has_ground_truth"))
        batch_op.drop_index(batch_op.f("ix_snapshots_content_hash"))
        batch_op.drop_index(batch_op.f("ix_snapshots_classification"))
        batch_op.drop_index("ix_snapshots_channel_received_at")
        batch_op.drop_index(batch_op.f("ix_snapshots_channel"))
        batch_op.drop_index(batch_op.f("ix_snapshots_bpm"))

    op.drop_table("snapshots")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_snapshot_id"))
        batch_op.drop_index(batch_op.f("ix_quarantine_reason_type"))
        batch_op.drop_index(batch_op.f("ix_quarantine_http_status"))
        batch_op.drop_index(batch_op.f("ix_quarantine_first_seen_at"))
        batch_op.drop_index(batch_op.f("ix_quarantine_channel"))

    op.drop_table("quarantine")
