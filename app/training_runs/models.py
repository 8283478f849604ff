from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running")  # a run in one of these holds the single run slot
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
STAGES = ("queued", "dataset", "training", "evaluating", "publishing", "done")
# The single run slot, held by the database too: two runs started at the same moment cannot
# both pass the application's check and both be queued.
ACTIVE_ONLY = text("status IN ('queued', 'running')")


class TrainingRun(Base):
    """A run's state, written by the worker as it goes so the API can show it."""

    __tablename__ = "training_runs"
    __table_args__ = (Index("one_active_run", "status", unique=True, postgresql_where=ACTIVE_ONLY, sqlite_where=ACTIVE_ONLY),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    label: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    stage: Mapped[str] = mapped_column(String(16), default="queued")
    parameters: Mapped[dict] = mapped_column(JSON)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"))
    epoch: Mapped[int | None] = mapped_column(Integer)  # last finished, 1-based
    history: Mapped[list] = mapped_column(JSON, default=list)  # per epoch: loss, val_loss, lr
    resumed_from_epoch: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[dict | None] = mapped_column(JSON)  # model and baselines, same data
    worker: Mapped[str | None] = mapped_column(String(255))
    # How many times the run was sent to the workers, and when last: a queued run no worker
    # starts is sent again (training_runs/flows.py), and only the latest sending is carried out.
    dispatches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when a stage finishes, cleared when the next one starts: a running run whose next stage
    # has not started some time after is sent again from that stage (the chain's message was lost).
    stage_finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
