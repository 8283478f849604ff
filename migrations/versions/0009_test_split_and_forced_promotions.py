"""Datasets get a test split; promotions record whether a gate decision was overridden

A dataset is now split three ways (train / validation for model selection / test for the
report and the gate): `test_count` counts the third. A promotion of a model the gate rejected
must be forced with a reason: `forced` marks it, so the audit and the dashboard show it.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch_op:
        batch_op.add_column(sa.Column("test_count", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("model_promotions") as batch_op:
        batch_op.add_column(sa.Column("forced", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("model_promotions") as batch_op:
        batch_op.drop_column("forced")
    with op.batch_alter_table("datasets") as batch_op:
        batch_op.drop_column("test_count")
