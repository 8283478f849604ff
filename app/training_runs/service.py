"""A run's pipeline stages as plain functions (Celery tasks in workers/ wrap them), and the
bookkeeping that keeps its state in the database while it runs.

Every stage is idempotent: building the dataset again finds the same dataset (same hash),
training again resumes from the run's last epoch checkpoint, evaluating again overwrites the
same metrics. So a task redelivered after a worker died simply carries on.
"""

import dataclasses
import shutil
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from app.artifacts import ArtifactStore
from app.datasets.models import Dataset
from app.datasets.service import build_dataset, load_split
from app.db.engine import session_scope
from app.training_runs.models import ACTIVE_STATUSES, TrainingRun
from app.training_runs.schemas import RunParameters


class RunCancelled(Exception):
    pass


class StaleDispatch(Exception):
    """A message for a run that has since been sent again (or has ended): the worker drops it."""


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


def finish_stage(run_id: int, dispatch: int | None) -> None:
    """Records that this sending's stage is done: the next one should start soon."""
    with session_scope() as session:
        query = update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.status == "running")
        if dispatch is not None:
            query = query.where(TrainingRun.dispatches == dispatch)
        session.execute(query.values(stage_finished_at=datetime.now(UTC)))


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


def run_key(run_id: int) -> str:
    """Where a run's checkpoints live in the artifact store."""
    return f"runs/{run_id}"


def _enter_stage(run_id: int, stage: str, worker: str, dispatch: int | None) -> TrainingRun:
    """Marks the run as in this stage, on this worker. In one conditional UPDATE, so a run sent
    again meanwhile (its dispatch number moved on) is never carried out twice."""
    with session_scope() as session:
        claim = update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.status.in_(ACTIVE_STATUSES))
        if dispatch is not None:
            claim = claim.where(TrainingRun.dispatches == dispatch)
        now = datetime.now(UTC)
        claimed = session.execute(
            claim.values(
                status="running",
                stage=stage,
                worker=worker,
                started_at=func.coalesce(TrainingRun.started_at, now),
                stage_finished_at=None,
            )
        ).rowcount
        run = session.get(TrainingRun, run_id)
        if run is None:
            raise LookupError(f"no training run {run_id}")
        if run.status == "cancelled":
            raise RunCancelled(f"run {run_id} was cancelled")
        if not claimed:
            raise StaleDispatch(
                f"run {run_id} is {run.status} at dispatch {run.dispatches}; this message was dispatch {dispatch}"
            )
        session.expunge(run)
        return run


def dataset_stage(run_id: int, store: ArtifactStore, worker: str, dispatch: int | None = None) -> int:
    run = _enter_stage(run_id, "dataset", worker, dispatch)
    if run.dataset_id is not None:
        return run.dataset_id
    parameters = RunParameters(**run.parameters)
    with session_scope() as session:
        dataset = build_dataset(
            store,
            parameters.run_label,
            parameters.validation_share,
            parameters.test_share,
            db_session=session,
        )
        if min(dataset.train_count, dataset.validation_count, dataset.test_count) == 0:
            raise ValueError(
                f"dataset {dataset.content_hash[:16]} has {dataset.train_count} training, {dataset.validation_count} "
                f"validation and {dataset.test_count} test snapshots with a label: each split needs some"
            )
        session.get(TrainingRun, run_id).dataset_id = dataset.id
        return dataset.id


def training_stage(run_id: int, store: ArtifactStore, worker: str, dispatch: int | None = None) -> int:
    """Trains (resuming from the run's checkpoint, on whichever worker wrote it, if there is
    one); returns epochs run."""
    run = _enter_stage(run_id, "training", worker, dispatch)  # before TensorFlow's import: seconds
    from training.train import STATE_FILE, train

    config = model_config(RunParameters(**run.parameters))
    directory = _dataset_directory(run.dataset_id, store)
    key = run_key(run_id)
    try:
        run_dir = store.pull(key)
    except FileNotFoundError:  # no epoch finished yet, here or on another worker
        run_dir = store.local(key)
        shutil.rmtree(run_dir, ignore_errors=True)

    def on_epoch(progress) -> None:
        store.push(key, last=[STATE_FILE])  # the state names the epoch the checkpoint holds
        with session_scope() as session:
            current = session.get(TrainingRun, run_id)
            current.epoch = progress.epoch + 1
            current.history = [*current.history, dataclasses.asdict(progress)]

    def cancelled() -> bool:
        with session_scope() as session:
            return session.scalar(select(TrainingRun.status).where(TrainingRun.id == run_id)) == "cancelled"

    result = train(
        load_split(directory, "train"),
        load_split(directory, "validation"),
        config,
        run_dir,
        on_epoch=on_epoch,
        should_stop=cancelled,
        seed=RunParameters(**run.parameters).seed,
    )
    with session_scope() as session:
        current = session.get(TrainingRun, run_id)
        if result.resumed_from_epoch is not None:
            current.resumed_from_epoch = result.resumed_from_epoch + 1
        current.history = result.history
    if cancelled():
        raise RunCancelled(f"run {run_id} was cancelled")
    return result.epochs_run


def model_config(parameters: RunParameters):
    """The model configuration a run's parameters ask for: the size's own, but for what the run sets."""
    from training.model import SIZES

    overrides = {"batch_size": parameters.batch_size, "learning_rate": parameters.learning_rate}
    return dataclasses.replace(
        SIZES[parameters.model_size], epochs=parameters.epochs, **{name: v for name, v in overrides.items() if v is not None}
    )


def evaluation_stage(run_id: int, store: ArtifactStore, worker: str, dispatch: int | None = None) -> dict:
    """Metrics of the trained model next to the baselines, on the test split."""
    run = _enter_stage(run_id, "evaluating", worker, dispatch)
    from training.train import evaluate_against_baselines

    directory = _dataset_directory(run.dataset_id, store)
    model = _best_model(store, run_id)
    splits = [load_split(directory, split) for split in ("train", "validation", "test")]
    from app.config import get_settings
    from app.stem_models.service import judge
    from app.wire import json_safe

    metrics = judge(evaluate_against_baselines(model, *splits), splits[0])
    songs = get_settings().evaluation_songs_dir
    if songs is not None:
        from training.audio_eval import evaluate_songs

        # Which stems' gains to apply is decided on half the songs; the other half is the report.
        validation, test = evaluate_songs(model, songs).split()
        applied = validation.helpful_stems()
        audio = json_safe(test.applied_only(applied).as_dict())
        metrics["audio"] = {
            "headline": audio["headline"],
            "per_stem": audio["per_stem"],
            "skipped": audio["skipped"],
            "songs_dir": str(songs),
            "applied_stems": applied,
            "validation_songs": len(validation.songs),
        }
    with session_scope() as session:
        session.get(TrainingRun, run_id).metrics = metrics
    return metrics


def publishing_stage(run_id: int, store: ArtifactStore, worker: str, dispatch: int | None = None) -> str:
    """Exports the run's best model as TF.js weights and gates it; returns the decision."""
    from app.stem_models.service import publish_run

    run = _enter_stage(run_id, "publishing", worker, dispatch)
    if run.metrics is None:
        raise LookupError(f"run {run_id} has not been evaluated")
    with session_scope() as session:
        stem_model = publish_run(run, _best_model(store, run_id), store, run.metrics, db_session=session)
        current = session.get(TrainingRun, run_id)
        current.status, current.stage, current.finished_at = "succeeded", "done", datetime.now(UTC)
        decision = f"{stem_model.version}: {stem_model.decision} ({stem_model.reason})"
    store.forget(run_key(run_id))  # the store keeps the checkpoints; this machine needs them no more
    return decision


def _best_model(store: ArtifactStore, run_id: int):
    from training.train import load_best_model

    return load_best_model(store.pull(run_key(run_id)))


def run_all_stages(run_id: int, store: ArtifactStore, worker: str) -> None:
    """Every stage of a run, in this process (the Celery chain runs the same functions)."""
    for stage in (dataset_stage, training_stage, evaluation_stage, publishing_stage):
        stage(run_id, store, worker)


def mark_failed(run_id: int, error: BaseException) -> None:
    """What a worker records when a stage raised: the run failed with the error, or, when an
    operator cancelled it, when it stopped. A run that has ended otherwise is left as it is."""
    reason = f"{type(error).__name__}: {error}"[:10_000]
    with session_scope() as session:
        if not isinstance(error, RunCancelled):
            fail(run_id, reason, db_session=session)
            return
        session.execute(
            update(TrainingRun)
            .where(TrainingRun.id == run_id, TrainingRun.status == "cancelled", TrainingRun.finished_at.is_(None))
            .values(error=reason, finished_at=datetime.now(UTC))
        )


def _dataset_directory(dataset_id: int | None, store: ArtifactStore) -> Path:
    """This machine's copy of a run's dataset."""
    with session_scope() as session:
        dataset = session.get(Dataset, dataset_id) if dataset_id is not None else None
        if dataset is None:
            raise LookupError("the run has no dataset yet")
        key = dataset.artifact_key
    return store.pull(key)
