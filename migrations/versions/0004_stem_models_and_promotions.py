"""stem models and promotions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 06:33:31.460250
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stem_models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name=op.f("fk_stem_models_dataset_id_datasets")),
        sa.ForeignKeyConstraint(["run_id"], ["training_runs.id"], name=op.f("fk_stem_models_run_id_training_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stem_models")),
        sa.UniqueConstraint("version", name=op.f("uq_stem_models_version")),
    )
    with op.batch_alter_table("stem_models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stem_models_decision"), ["decision"], unique=False)
        batch_op.create_index(batch_op.f("ix_stem_models_run_id"), ["run_id"], unique=False)

    op.create_table(
        "model_promotions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), server_default=sa.text("(CURRENT_TIMESTAMP)"), nullable=False),
        sa.Column("promoted_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["stem_models.id"], name=op.f("fk_model_promotions_model_id_stem_models")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_promotions")),
    )
    with op.batch_alter_table("model_promotions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_promotions_model_id"), ["model_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("model_promotions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_promotions_model_id"))

    op.drop_table("model_promotions")
    with op.batch_alter_table("stem_models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stem_models_run_id"))
        batch_op.drop_index(batch_op.f("ix_stem_models_decision"))

    op.drop_table("stem_models")
