"""Datasets and models name their files by artifact-store key, not by local path

`path` (an absolute folder on the machine that built it) becomes `artifact_key`, a key in the
artifact store ("datasets/<hash>", "models/<version>"), which every machine resolves through
its own store (app/artifacts.py). The folders keep their layout, so the key is the last two
parts of the old path.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = {"datasets": "datasets", "stem_models": "models"}


def upgrade() -> None:
    connection = op.get_bind()
    for table, kind in TABLES.items():
        # A plain RENAME COLUMN (Postgres, SQLite >= 3.25): a batch copy of the table would have to
        # drop `datasets`, which other tables' foreign keys refuse.
        op.execute(f"ALTER TABLE {table} RENAME COLUMN path TO artifact_key")
        rows = connection.execute(sa.text(f"SELECT id, artifact_key FROM {table}")).all()
        for row_id, path in rows:
            key = f"{kind}/{path.rstrip('/').rsplit('/', 1)[-1]}"
            connection.execute(sa.text(f"UPDATE {table} SET artifact_key = :key WHERE id = :id"), {"key": key, "id": row_id})


def downgrade() -> None:
    # The keys stay keys: relative to FABRIC_ARTIFACTS_DIR, where the local store keeps them.
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RENAME COLUMN artifact_key TO path")
