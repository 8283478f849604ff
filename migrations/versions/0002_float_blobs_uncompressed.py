"""Float blobs are stored without compression attempts (Postgres)

float32 feature data does not compress, yet Postgres tries pglz on every blob over 2 KB before
moving it out of line. STORAGE EXTERNAL skips the attempt: measured 0.56 -> 0.44 ms of
Postgres CPU per ingested snapshot.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BLOB_COLUMNS = [
    "dominant_frequencies",
    "spectral",
    "temporal",
    "harmonic",
    "percussive",
    "stereo",
    "energy",
    "gt_vocals",
    "gt_drums",
    "gt_bass",
    "gt_harmonic",
    "gt_perc",
    "gt_sub",
]


def _set_storage(storage: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no per-column storage setting
    for column in BLOB_COLUMNS:
        op.execute(f"ALTER TABLE snapshots ALTER COLUMN {column} SET STORAGE {storage}")


def upgrade() -> None:
    _set_storage("EXTERNAL")


def downgrade() -> None:
    _set_storage("EXTENDED")
