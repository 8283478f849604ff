"""Training runs in the database: creating, finding, cancelling and failing them, and the
bookkeeping of their sendings to the workers. The stages themselves are app/training_runs/stages.py."""

from datetime import UTC, datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from app.training_runs.models import ACTIVE_STATUSES, TrainingRun
from app.training_runs.schemas import RunParameters


def create_run(parameters: RunParameters, *, db_session: Session) -> TrainingRun:
    run = TrainingRun(label=parameters.run_label, status="queued", stage="queued", parameters=parameters.model_dump(), history=[])
    db_session.add(run)
    db_session.commit()
    return run


def get(run_id: int, *, db_session: Session) -> TrainingRun | None:
    return db_session.get(TrainingRun, run_id)


def get_all(*, db_session: Session, limit: int = 50, before_id: int | None = None) -> list[TrainingRun]:
    """Runs, newest first; page on with `before_id` (the last id of the previous page)."""
    query = select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)
    if before_id:
        query = query.where(TrainingRun.id < before_id)
    return list(db_session.scalars(query))


class RunNotActive(Exception):
    """The run has ended already: nothing to cancel."""


def cancel(run_id: int, *, db_session: Session) -> TrainingRun | None:
    """Marks a queued or running run cancelled (the worker stops at its next stage or epoch).
    None if there is no such run; RunNotActive if it has ended. Commits."""
    run = db_session.get(TrainingRun, run_id)
    if run is None:
        return None
    if run.status not in ACTIVE_STATUSES:
        raise RunNotActive(f"run {run_id} is already {run.status}")
    run.status = "cancelled"
    db_session.commit()
    return run


def count_by_status(*, db_session: Session) -> dict[str, int]:
    return dict(db_session.execute(select(TrainingRun.status, func.count()).group_by(TrainingRun.status)).all())


def get_active(*, db_session: Session) -> TrainingRun | None:
    """The run holding the single run slot (queued or running), if any."""
    return db_session.scalar(select(TrainingRun).where(TrainingRun.status.in_(ACTIVE_STATUSES)).limit(1))


# A run's stages in order, as the run row names them (app/broker.py RUN_STAGES sends them).
STAGES = ("dataset", "training", "evaluating", "publishing")


def record_dispatch(run_id: int, *, db_session: Session, seen: int | None = None) -> int | None:
    """Numbers the next sending of a run that waits for a worker (queued, or running between two
    stages) and commits it; returns that number, or None when the run no longer waits or another
    process numbered it first (`seen` is the number the caller read)."""
    waiting = (TrainingRun.status == "queued") | ((TrainingRun.status == "running") & TrainingRun.stage_finished_at.is_not(None))
    query = update(TrainingRun).where(TrainingRun.id == run_id, waiting)
    if seen is not None:
        query = query.where(TrainingRun.dispatches == seen)
    now = datetime.now(UTC)
    # A run between stages keeps waiting, timed from this sending.
    waited = case((TrainingRun.stage_finished_at.is_not(None), now), else_=None)
    result = db_session.execute(
        query.values(dispatches=TrainingRun.dispatches + 1, dispatched_at=now, stage_finished_at=waited).returning(
            TrainingRun.dispatches
        )
    )
    number = result.scalar()
    db_session.commit()
    return number


def get_unstarted(*, db_session: Session, dispatched_before: datetime) -> list[TrainingRun]:
    """Queued runs that no worker has started since they were last sent, before the moment given."""
    return list(
        db_session.scalars(
            select(TrainingRun)
            .where(TrainingRun.status == "queued", TrainingRun.dispatched_at < dispatched_before)
            .order_by(TrainingRun.id)
        )
    )


def get_stalled(*, db_session: Session, finished_before: datetime) -> list[TrainingRun]:
    """Running runs whose last stage finished (or which were last sent between stages) before
    the moment given, and whose next stage no worker has started."""
    return list(
        db_session.scalars(
            select(TrainingRun)
            .where(TrainingRun.status == "running", TrainingRun.stage_finished_at < finished_before)
            .order_by(TrainingRun.id)
        )
    )


def fail(run_id: int, reason: str, *, db_session: Session, only_if_queued: bool = False) -> bool:
    """Ends a queued or running run as failed, with the reason; False if it had ended (or, with
    `only_if_queued`, had started) meanwhile."""
    statuses = ("queued",) if only_if_queued else ACTIVE_STATUSES
    result = db_session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == run_id, TrainingRun.status.in_(statuses))
        .values(status="failed", error=reason, finished_at=datetime.now(UTC))
    )
    db_session.commit()
    return result.rowcount == 1
