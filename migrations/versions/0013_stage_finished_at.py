"""When a running run's last stage finished: the sweep re-sends a run whose next stage never started

A Celery chain sends a run's next stage when the previous one finishes; a message lost there (a
Redis restart without its append-only file) left the run `running` forever.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("stage_finished_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("stage_finished_at")
