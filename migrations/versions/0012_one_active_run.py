"""At most one run is queued or running, held by a unique partial index

Two `POST /runs` at the same moment could both find no active run and both insert one. Before
the index is built, any active runs but the newest are failed with the reason (there should be
none: the application already allowed one at a time).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ACTIVE_ONLY = sa.text("status IN ('queued', 'running')")


def upgrade() -> None:
    op.execute(
        "UPDATE training_runs SET status = 'failed', finished_at = CURRENT_TIMESTAMP,"
        " error = 'another run was active at the same time; only the newest was kept'"
        " WHERE status IN ('queued', 'running')"
        " AND id < (SELECT max(id) FROM training_runs WHERE status IN ('queued', 'running'))"
    )
    op.create_index(
        "one_active_run", "training_runs", ["status"], unique=True, postgresql_where=ACTIVE_ONLY, sqlite_where=ACTIVE_ONLY
    )


def downgrade() -> None:
    op.drop_index("one_active_run", table_name="training_runs")
