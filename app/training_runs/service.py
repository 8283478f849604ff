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
    """Fits ridge and trains each learned candidate the run names (resuming from the run's
    checkpoint, on whichever worker wrote it, if there is one); returns epochs run."""
    run = _enter_stage(run_id, "training", worker, dispatch)  # before TensorFlow's import: seconds
    from training.candidates import train_candidates
    from training.train import STATE_FILE

    parameters = RunParameters(**run.parameters)
    directory = _dataset_directory(run.dataset_id, store)
    key = run_key(run_id)
    try:
        run_dir = store.pull(key)
    except FileNotFoundError:  # no epoch finished yet, here or on another worker
        run_dir = store.local(key)
        shutil.rmtree(run_dir, ignore_errors=True)

    def on_epoch(candidate: str, progress) -> None:
        store.push(key, last=[f"{candidate}/{STATE_FILE}"])  # the state names the epoch the checkpoint holds
        with session_scope() as session:
            current = session.get(TrainingRun, run_id)
            current.epoch = progress.epoch + 1
            current.history = [*current.history, {"candidate": candidate} | dataclasses.asdict(progress)]

    def cancelled() -> bool:
        with session_scope() as session:
            return session.scalar(select(TrainingRun.status).where(TrainingRun.id == run_id)) == "cancelled"

    resumed = bool(run.history)  # an earlier delivery of this stage finished epochs
    results = train_candidates(
        parameters.candidates,
        load_split(directory, "train"),
        load_split(directory, "validation"),
        run_dir,
        epochs=parameters.epochs,
        overrides=training_overrides(parameters),
        seed=parameters.seed,
        on_epoch=on_epoch,
        should_stop=cancelled,
    )
    store.push(key)  # ridge, and a candidate that had nothing left to train
    with session_scope() as session:
        current = session.get(TrainingRun, run_id)
        if resumed:
            current.resumed_from_epoch = run.epoch
        # Each candidate's own record of its epochs, with the per-stem errors the progress lacks.
        current.history = [{"candidate": name} | epoch for name, result in results.items() for epoch in result.history]
    if cancelled():
        raise RunCancelled(f"run {run_id} was cancelled")
    return sum(result.epochs_run for result in results.values())


def training_overrides(parameters: RunParameters) -> dict:
    """What the run sets for every candidate; each candidate keeps its own for the rest."""
    overrides = {"batch_size": parameters.batch_size, "learning_rate": parameters.learning_rate}
    return {name: value for name, value in overrides.items() if value is not None}


def evaluation_stage(run_id: int, store: ArtifactStore, worker: str, dispatch: int | None = None) -> dict:
    """Every candidate on validation (which selects) and test (which reports), beside the
    baselines. With evaluation songs, each candidate's gains are also played on them: half the
    songs select (the share of the ceiling's SDR improvement) and decide which stems' gains
    apply, the other half is the audio report."""
    run = _enter_stage(run_id, "evaluating", worker, dispatch)
    from app.config import get_settings
    from app.stem_models.service import judge
    from app.wire import json_safe
    from training.candidates import choose, judge_candidates, load_candidates
    from training.metrics import baseline_predictions, evaluate

    directory = _dataset_directory(run.dataset_id, store)
    run_dir = store.pull(run_key(run_id))
    train, validation, test = (load_split(directory, split) for split in ("train", "validation", "test"))
    baselines = {name: evaluate(test, p) for name, p in baseline_predictions(train, validation, test).items()}
    models = load_candidates(run_dir, RunParameters(**run.parameters).candidates)
    candidates = judge_candidates(models, validation, test)
    songs = get_settings().evaluation_songs_dir
    played = {}
    if songs is not None:
        from training.audio_eval import evaluate_songs

        played = {name: evaluate_songs(model, songs).split() for name, model in models.items()}
        candidates = [dataclasses.replace(c, validation_audio_share=played[c.name][0].ceiling_share()) for c in candidates]
    choice = choose(candidates, baselines)
    metrics = judge({"model": choice.predictor.test} | baselines, train, choice)
    if played:
        validation_songs, test_songs = played[choice.predictor.name]
        applied = validation_songs.helpful_stems()
        audio = json_safe(test_songs.applied_only(applied).as_dict())
        metrics["audio"] = {
            "headline": audio["headline"],
            "per_stem": audio["per_stem"],
            "skipped": audio["skipped"],
            "songs_dir": str(songs),
            "applied_stems": applied,
            "validation_songs": len(validation_songs.songs),
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
        stem_model = publish_run(run, _published_candidate(store, run_id, run.metrics), store, run.metrics, db_session=session)
        current = session.get(TrainingRun, run_id)
        current.status, current.stage, current.finished_at = "succeeded", "done", datetime.now(UTC)
        decision = f"{stem_model.version}: {stem_model.decision} ({stem_model.reason})"
    store.forget(run_key(run_id))  # the store keeps the checkpoints; this machine needs them no more
    return decision


def _published_candidate(store: ArtifactStore, run_id: int, metrics: dict):
    """The candidate that faced the gate (a run judged before candidates had one, in the run's folder)."""
    from training.candidates import load_candidate
    from training.train import load_best_model

    run_dir = store.pull(run_key(run_id))
    if "choice" not in metrics:
        return load_best_model(run_dir)
    return load_candidate(run_dir, metrics["choice"]["predictor"]["name"])


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
