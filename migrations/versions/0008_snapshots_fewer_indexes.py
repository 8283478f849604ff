"""Snapshots drop two indexes that no query needs

Every index is written on every ingested snapshot. ix_snapshots_content_hash was never read
(a retry is recognised by looking its id up, then comparing hashes), and ix_snapshots_channel
repeats the leading column of ix_snapshots_channel_received_at, which serves channel-only
queries as well. Each was one more B-tree insertion per snapshot, and the hash's random keys
touched pages all over its index. Measured at 500 snapshots/s (a small gain in Postgres' CPU
per snapshot): see README, "Benchmarks > Ingest".

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots") as batch_op:
        batch_op.drop_index("ix_snapshots_content_hash")
        batch_op.drop_index("ix_snapshots_channel")


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as batch_op:
        batch_op.create_index("ix_snapshots_channel", ["channel"], unique=False)
        batch_op.create_index("ix_snapshots_content_hash", ["content_hash"], unique=False)
