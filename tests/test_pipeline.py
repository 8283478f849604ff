"""End to end: synthetic snapshots posted to the API land in the real Postgres; a run started
over Celery is carried out by a real worker process on the real Redis: dataset, training of a
tiny model, metrics beside the baselines, all recorded on the run."""

import json
import time

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.database import session_scope
from app.datasets.models import Dataset
from app.main import create_app
from app.training_runs.models import TrainingRun
from app.training_runs.schemas import RunParameters
from app.training_runs.service import create_run
from tests.conftest import FETCH_HEADERS
from tests.servers import worker_process
from tests.test_worker import redis_url  # noqa: F401  (fixture)
from training.synthetic import synthetic_snapshots
from workers.celery_app import create_celery
from workers.tasks import pipeline

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

SNAPSHOTS = 150
EPOCHS = 12


@pytest.fixture
def pipeline_env(configure, postgres_url, redis_url, tmp_path):  # noqa: F811
    env = {
        "DATABASE_URL": postgres_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "FABRIC_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "FABRIC_RATE_LIMIT_PER_S": "0",
    }
    configure(**env)
    from sqlalchemy import delete

    from app.snapshots.models import Snapshot

    with session_scope() as session:
        for table in (TrainingRun, Dataset, Snapshot):
            session.execute(delete(table))
    return env


def wait_for_run(run_id: int, timeout_s: float) -> TrainingRun:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_scope() as session:
            run = session.get(TrainingRun, run_id)
            if run.status in ("succeeded", "failed", "cancelled"):
                session.expunge(run)
                return run
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} did not finish in {timeout_s} s")


def test_posted_snapshots_become_a_trained_evaluated_run(pipeline_env, tmp_path):
    client = TestClient(create_app())
    for snapshot in synthetic_snapshots(SNAPSHOTS, seed=21):
        assert client.post("/stem-separation", content=json.dumps(snapshot), headers=FETCH_HEADERS).status_code == 201

    with session_scope() as session:
        run = create_run(session, RunParameters(run_label="e2e", epochs=EPOCHS, model_size="tiny"))
        run_id = run.id
    settings = Settings(**{"database_url": pipeline_env["DATABASE_URL"]},
                        celery_broker_url=pipeline_env["CELERY_BROKER_URL"],
                        celery_result_backend=pipeline_env["CELERY_RESULT_BACKEND"])  # fmt: skip
    celery = create_celery(settings)
    with worker_process(pipeline_env, queue="cpu", log_path=tmp_path / "worker.log"):
        pipeline(run_id, celery=celery, training_queue="cpu").apply_async()
        run = wait_for_run(run_id, timeout_s=300)

    assert run.status == "succeeded", (run.error, (tmp_path / "worker.log").read_text()[-3000:])
    assert run.stage == "done" and run.worker
    assert run.epoch == len(run.history) and 1 <= run.epoch <= EPOCHS
    assert all({"loss", "val_loss", "learning_rate"} <= set(h) for h in run.history)
    with session_scope() as session:
        dataset = session.get(Dataset, run.dataset_id)
        assert dataset.train_count + dataset.validation_count == SNAPSHOTS
        assert dataset.manifest["stem_coverage"] == {stem: SNAPSHOTS for stem in dataset.manifest["encoding"]["stems"]}
        assert dataset.manifest["audit"]["duplicate_content_skipped"] == 0
    assert set(run.metrics) == {"model", "zeros", "train_mean"}
    model, zeros = run.metrics["model"]["overall"], run.metrics["zeros"]["overall"]
    assert model["sdr"]["median"] > zeros["sdr"]["median"]
    assert model["score"]["count"] > 0


def test_run_resumes_on_another_worker_after_the_first_dies_mid_training(pipeline_env, tmp_path):
    """SIGKILL the worker during training (no warm shutdown, no acknowledgement): Redis hands
    the task to a second worker after the visibility timeout, and training continues from the
    last epoch checkpoint, with one continuous epoch history."""
    env = {**pipeline_env, "FABRIC_TASK_VISIBILITY_TIMEOUT_S": "3"}
    client = TestClient(create_app())
    for snapshot in synthetic_snapshots(120, seed=22):
        assert client.post("/stem-separation", content=json.dumps(snapshot), headers=FETCH_HEADERS).status_code == 201
    with session_scope() as session:
        run_id = create_run(session, RunParameters(run_label="resume", epochs=40, batch_size=4, model_size="tiny")).id
    settings = Settings(database_url=env["DATABASE_URL"], celery_broker_url=env["CELERY_BROKER_URL"],
                        celery_result_backend=env["CELERY_RESULT_BACKEND"], task_visibility_timeout_s=3)  # fmt: skip

    with worker_process(env, queue="cpu", log_path=tmp_path / "first.log") as first:
        pipeline(run_id, celery=create_celery(settings), training_queue="cpu").apply_async()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with session_scope() as session:
                epoch = session.get(TrainingRun, run_id).epoch or 0
            if epoch >= 3:
                break
            time.sleep(0.05)
        first.kill()  # SIGKILL: the task is never acknowledged
        first.wait()
    killed_at_epoch = epoch
    assert killed_at_epoch >= 3

    with worker_process(env, queue="cpu", log_path=tmp_path / "second.log"):
        run = wait_for_run(run_id, timeout_s=180)

    assert run.status == "succeeded", (run.error, (tmp_path / "second.log").read_text()[-3000:])
    assert run.resumed_from_epoch is not None and run.resumed_from_epoch >= killed_at_epoch
    assert [h["epoch"] for h in run.history] == list(range(len(run.history)))  # no restart, no gap
    assert run.metrics is not None
