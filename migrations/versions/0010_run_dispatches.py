"""Training runs record how often and when they were sent to the workers

A queued run that no worker starts (its message lost with a broker restart, or never sent) is
sent again, and only its latest sending is carried out: `dispatches` numbers the sendings,
`dispatched_at` says when the last one was. Runs from before count as sent once, now.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs") as batch_op:
        batch_op.add_column(sa.Column("dispatches", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True)))
    # A run queued before this revision was sent once; its message carries no number, which
    # workers accept (dispatch None).
    op.execute("UPDATE training_runs SET dispatches = 1, dispatched_at = CURRENT_TIMESTAMP WHERE status = 'queued'")


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch_op:
        batch_op.drop_column("dispatched_at")
        batch_op.drop_column("dispatches")
