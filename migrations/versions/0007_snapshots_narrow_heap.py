"""Snapshots keep their feature blobs out of the main table (Postgres)

Postgres moves blobs out of line only until a row fits in ~2 KB, so each snapshot row kept
~2 KB of streams inline and every statistics scan read them: 211 MB of table for 100,000
snapshots. toast_tuple_target = 128 moves them all out (measured: 46 MB, the same 2.8 GB in
all; a full scan 76 -> 28 ms). Rows written before this keep their layout until rewritten
(VACUUM FULL snapshots rewrites them).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite has no such setting
        op.execute("ALTER TABLE snapshots SET (toast_tuple_target = 128)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE snapshots RESET (toast_tuple_target)")
