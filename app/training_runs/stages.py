"""A run's pipeline stages as plain functions (Celery tasks in workers/ wrap them).

Every stage is idempotent: building the dataset again finds the same dataset (same hash),
training again resumes from the run's last epoch checkpoint, evaluating again overwrites the
same judgement. So a task redelivered after a worker died simply carries on.

A stage runs for minutes, so it holds no database session across its work: it opens short
ones from `sessions` (the engine's session_scope unless a caller hands in another) to claim the
run, record each epoch and store what it found.
"""

import dataclasses
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.artifacts import ArtifactStore
from app.datasets.models import Dataset
from app.datasets.service import build_dataset
from app.db.engine import session_scope
from app.training_runs.models import ACTIVE_STATUSES, TrainingRun
from app.training_runs.schemas import RunParameters
from app.training_runs.service import fail
from training.judgement import Judgement
from training.shards import load_split

Sessions = Callable[[], AbstractContextManager[Session]]


class RunCancelled(Exception):
    pass


class StaleDispatch(Exception):
    """A message for a run that has since been sent again (or has ended): the worker drops it."""


def finish_stage(run_id: int, dispatch: int | None, *, sessions: Sessions = session_scope) -> None:
    """Records that this sending's stage is done: the next one should start soon."""
    with sessions() as session:
        query = update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.status == "running")
        if dispatch is not None:
            query = query.where(TrainingRun.dispatches == dispatch)
        session.execute(query.values(stage_finished_at=datetime.now(UTC)))


def run_key(run_id: int) -> str:
    """Where a run's checkpoints live in the artifact store."""
    return f"runs/{run_id}"


def _enter_stage(run_id: int, stage: str, worker: str, dispatch: int | None, sessions: Sessions) -> TrainingRun:
    """Marks the run as in this stage, on this worker. In one conditional UPDATE, so a run sent
    again meanwhile (its dispatch number moved on) is never carried out twice."""
    with sessions() as session:
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


def dataset_stage(
    run_id: int, store: ArtifactStore, worker: str, dispatch: int | None = None, *, sessions: Sessions = session_scope
) -> int:
    run = _enter_stage(run_id, "dataset", worker, dispatch, sessions)
    if run.dataset_id is not None:
        return run.dataset_id
    parameters = RunParameters(**run.parameters)
    with sessions() as session:
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


def training_stage(
    run_id: int, store: ArtifactStore, worker: str, dispatch: int | None = None, *, sessions: Sessions = session_scope
) -> int:
    """Fits ridge and trains each learned candidate the run names (resuming from the run's
    checkpoint, on whichever worker wrote it, if there is one); returns epochs run."""
    run = _enter_stage(run_id, "training", worker, dispatch, sessions)  # before TensorFlow's import: seconds
    from training.candidates import train_candidates
    from training.train import STATE_FILE

    parameters = RunParameters(**run.parameters)
    directory = _dataset_directory(run.dataset_id, store, sessions)
    key = run_key(run_id)
    try:
        run_dir = store.pull(key)
    except FileNotFoundError:  # no epoch finished yet, here or on another worker
        run_dir = store.local(key)
        shutil.rmtree(run_dir, ignore_errors=True)

    def on_epoch(candidate: str, progress) -> None:
        store.push(key, last=[f"{candidate}/{STATE_FILE}"])  # the state names the epoch the checkpoint holds
        with sessions() as session:
            current = session.get(TrainingRun, run_id)
            current.epoch = progress.epoch + 1
            current.history = [*current.history, {"candidate": candidate} | dataclasses.asdict(progress)]

    def cancelled() -> bool:
        with sessions() as session:
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
    with sessions() as session:
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


def evaluation_stage(
    run_id: int, store: ArtifactStore, worker: str, dispatch: int | None = None, *, sessions: Sessions = session_scope
) -> dict:
    """Every candidate on validation (which selects) and test (which reports), beside the
    baselines. With evaluation songs, each candidate's gains are also played on them: half the
    songs select (the share of the ceiling's SDR improvement) and decide which stems' gains
    apply, the other half is the audio report. Stores the run's judgement and returns it as stored."""
    run = _enter_stage(run_id, "evaluating", worker, dispatch, sessions)
    from app.config import get_settings
    from training.candidates import choose, judge_candidates, load_candidates
    from training.judgement import AudioJudgement, judge
    from training.metrics import baseline_reports

    directory = _dataset_directory(run.dataset_id, store, sessions)
    run_dir = store.pull(run_key(run_id))
    train, validation, test = (load_split(directory, split) for split in ("train", "validation", "test"))
    baselines = baseline_reports(train, validation, test)
    models = load_candidates(run_dir, RunParameters(**run.parameters).candidates)
    candidates = judge_candidates(models, validation, test)
    songs = get_settings().evaluation_songs_dir
    played = {}
    if songs is not None:
        from training.audio_eval import evaluate_songs

        played = {name: evaluate_songs(model, songs).split() for name, model in models.items()}
        candidates = [dataclasses.replace(c, validation_audio_share=played[c.name][0].ceiling_share()) for c in candidates]
    choice = choose(candidates, baselines)
    judgement = judge({"model": choice.predictor.test} | baselines, train, choice)
    if played:
        judgement = judgement.model_copy(update={"audio": AudioJudgement.of(*played[choice.predictor.name], str(songs))})
    stored = judgement.stored_form()
    with sessions() as session:
        session.get(TrainingRun, run_id).metrics = stored
    return stored


def publishing_stage(
    run_id: int, store: ArtifactStore, worker: str, dispatch: int | None = None, *, sessions: Sessions = session_scope
) -> str:
    """Exports the model that faced the gate as TF.js weights and gates it; returns the decision."""
    from app.stem_models.publishing import publish_run
    from training.candidates import load_candidate

    run = _enter_stage(run_id, "publishing", worker, dispatch, sessions)
    judgement = Judgement.stored(run.metrics)
    if judgement is None or judgement.predictor is None:
        raise LookupError(f"run {run_id} has no judgement naming its predictor: it has not been evaluated by this version")
    model = load_candidate(store.pull(run_key(run_id)), judgement.predictor.name)
    with sessions() as session:
        stem_model = publish_run(run.id, run.parameters, run.dataset_id, model, store, judgement, db_session=session)
        current = session.get(TrainingRun, run_id)
        current.status, current.stage, current.finished_at = "succeeded", "done", datetime.now(UTC)
        decision = f"{stem_model.version}: {stem_model.decision} ({stem_model.reason})"
    store.forget(run_key(run_id))  # the store keeps the checkpoints; this machine needs them no more
    return decision


def run_all_stages(run_id: int, store: ArtifactStore, worker: str, *, sessions: Sessions = session_scope) -> None:
    """Every stage of a run, in this process (the Celery chain runs the same functions)."""
    for stage in (dataset_stage, training_stage, evaluation_stage, publishing_stage):
        stage(run_id, store, worker, sessions=sessions)


def mark_failed(run_id: int, error: BaseException, *, sessions: Sessions = session_scope) -> None:
    """What a worker records when a stage raised: the run failed with the error, or, when an
    operator cancelled it, when it stopped. A run that has ended otherwise is left as it is."""
    reason = f"{type(error).__name__}: {error}"[:10_000]
    with sessions() as session:
        if not isinstance(error, RunCancelled):
            fail(run_id, reason, db_session=session)
            return
        session.execute(
            update(TrainingRun)
            .where(TrainingRun.id == run_id, TrainingRun.status == "cancelled", TrainingRun.finished_at.is_(None))
            .values(error=reason, finished_at=datetime.now(UTC))
        )


def _dataset_directory(dataset_id: int | None, store: ArtifactStore, sessions: Sessions) -> Path:
    """This machine's copy of a run's dataset."""
    with sessions() as session:
        dataset = session.get(Dataset, dataset_id) if dataset_id is not None else None
        if dataset is None:
            raise LookupError("the run has no dataset yet")
        key = dataset.artifact_key
    return store.pull(key)
