"""Runs cannot get stuck: the broker down at `POST /runs` is a prompt 503 that leaves the slot
free, a run whose message was lost is sent again, a stale message is dropped, and a run no
worker ever takes fails with the reason in bounded time."""

import json
import time

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import delete

from app.auth.service import create_token
from app.broker import send_run
from app.config import get_settings
from app.datasets.models import Dataset
from app.db.engine import session_scope
from app.main import create_app
from app.snapshots.models import Snapshot
from app.stem_models.models import ModelPromotion, StemModel
from app.training_runs.flows import redispatch_lost_runs, start_run
from app.training_runs.models import TrainingRun
from app.training_runs.schemas import RunParameters
from tests.support import FETCH_HEADERS
from tests.support.servers import TcpProxy, worker_process
from training.synthetic import synthetic_snapshots


def _empty_runs() -> None:
    with session_scope() as session:
        for table in (ModelPromotion, StemModel, TrainingRun, Dataset, Snapshot):
            session.execute(delete(table))


def test_a_run_no_worker_takes_is_sent_again_then_failed_with_the_reason(configure, sqlite_url, tmp_path):
    """No worker at all: the API's sweep sends the run again, then fails it, and the slot is free."""
    configure(
        DATABASE_URL=sqlite_url,
        FABRIC_EMBEDDED_BROKER_DIR=str(tmp_path / "broker"),
        FABRIC_RUN_SWEEP_INTERVAL_S="0.2",
        FABRIC_RUN_DISPATCH_TIMEOUT_S="0.5",
        FABRIC_RUN_MAX_DISPATCHES="2",
    )
    _empty_runs()
    with session_scope() as session:
        run_id = start_run(RunParameters(run_label="orphan", candidates=["tiny"]), db_session=session).id
    started = time.monotonic()
    with TestClient(create_app()):  # its lifespan runs the sweep
        while time.monotonic() - started < 15:
            with session_scope() as session:
                run = session.get(TrainingRun, run_id)
                if run.status != "queued":
                    break
            time.sleep(0.1)
    assert run.status == "failed" and run.dispatches == 2, (run.status, run.dispatches)
    assert "no worker started it after 2 sendings" in run.error
    assert len(list((tmp_path / "broker" / "queue").iterdir())) == 2  # each sending reached the broker
    with session_scope() as session:  # the slot is free
        assert start_run(RunParameters(run_label="next", candidates=["tiny"]), db_session=session).status == "queued"


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_broker_outage_lost_and_stale_messages(configure, postgres_url, redis_url, tmp_path):
    from sqlalchemy.engine import make_url

    url = make_url(redis_url)  # the same URL grammar: redis://host:port/db
    with TcpProxy(target_port=url.port) as proxy:
        broker = url.set(host="127.0.0.1", port=proxy.port).render_as_string()
        env = {
            "DATABASE_URL": postgres_url,
            "CELERY_BROKER_URL": broker,
            "CELERY_RESULT_BACKEND": broker,
            "FABRIC_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
            "FABRIC_RATE_LIMIT_PER_S": "0",
            "FABRIC_RUN_DISPATCH_TIMEOUT_S": "0.1",
        }
        configure(**env)
        _empty_runs()
        with session_scope() as session:
            token, _ = create_token("ops", "operator", db_session=session)
        client = TestClient(create_app())
        client.headers["Authorization"] = f"Bearer {token}"
        for snapshot in synthetic_snapshots(60, seed=5):
            assert client.post("/stem-separation", content=json.dumps(snapshot), headers=FETCH_HEADERS).status_code == 201

        # The broker down at POST /runs: a prompt 503, and the run is failed, not left queued.
        proxy.block()
        asked = time.monotonic()
        refused = client.post("/runs", json={"runLabel": "outage", "epochs": 2, "candidates": ["tiny"]})
        took_s = time.monotonic() - asked
        print(f"POST /runs with the broker down: {refused.status_code} after {took_s:.2f} s")
        assert refused.status_code == 503 and "broker" in refused.json()["detail"]
        assert took_s < 5
        [failed] = client.get("/runs").json()
        assert failed["status"] == "failed" and "not started: the task broker is unavailable" in failed["error"]
        proxy.unblock()

        # The broker back, the slot is free. Then the queue is lost (a restart without AOF).
        started = client.post("/runs", json={"runLabel": "lost", "epochs": 2, "candidates": ["tiny"]})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        redis.Redis.from_url(redis_url).delete("cpu")
        send_run(run_id, 1)  # ... and an old copy of its first message turns up after all
        time.sleep(0.2)
        with session_scope() as session:
            assert redispatch_lost_runs(get_settings(), db_session=session) == [f"run {run_id} sent again (sending 2)"]

        with worker_process(env, queue="cpu", log_path=tmp_path / "worker.log"):
            deadline = time.monotonic() + 180
            while (run := client.get(f"/runs/{run_id}").json())["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, run
                time.sleep(0.3)
        log = (tmp_path / "worker.log").read_text()
        assert run["status"] == "succeeded" and run["dispatches"] == 2, (run, log[-3000:])
        assert log.count("this message was dispatch 1; dropped") == 1, log[-3000:]
        with session_scope() as session:  # a finished run is not sent again
            assert redispatch_lost_runs(get_settings(), db_session=session) == []


def test_a_stage_error_fails_an_active_run_and_leaves_an_ended_one_alone(configure, sqlite_url):
    from app.training_runs import service, stages

    configure(DATABASE_URL=sqlite_url)
    _empty_runs()

    def run_after(error: BaseException, status: str | None = None) -> TrainingRun:
        with session_scope() as session:
            run = service.create_run(RunParameters(run_label="stage-error"), db_session=session)
            if status is not None:
                run.status = status
                session.commit()
            run_id = run.id
        stages.mark_failed(run_id, error)
        with session_scope() as session:
            run = session.get(TrainingRun, run_id)
            session.expunge(run)
            return run

    failed = run_after(ValueError("boom"), "running")
    assert (failed.status, failed.error) == ("failed", "ValueError: boom") and failed.finished_at is not None
    succeeded = run_after(OSError("a late error"), "succeeded")  # e.g. from a redelivered copy
    assert (succeeded.status, succeeded.error, succeeded.finished_at) == ("succeeded", None, None)
    cancelled = run_after(stages.RunCancelled("run was cancelled"), "cancelled")
    assert cancelled.status == "cancelled" and cancelled.error.startswith("RunCancelled") and cancelled.finished_at


def test_a_run_stalled_between_stages_is_sent_again_from_there_then_failed(configure, sqlite_url, tmp_path):
    """Its first stage done, the next one's message lost: the sweep sends the run again from that
    stage (not from the start), and fails it with the reason once its sendings are spent."""
    from app.training_runs import service, stages

    configure(
        DATABASE_URL=sqlite_url,
        FABRIC_EMBEDDED_BROKER_DIR=str(tmp_path / "broker"),
        FABRIC_RUN_DISPATCH_TIMEOUT_S="0.3",
        FABRIC_RUN_MAX_DISPATCHES="2",
    )
    _empty_runs()
    with session_scope() as session:
        run = service.create_run(RunParameters(run_label="stalled", candidates=["tiny"]), db_session=session)
        run_id = run.id
        run.dispatches = 1
    stages._enter_stage(run_id, "dataset", "a-worker", 1, session_scope)
    stages.finish_stage(run_id, 1)
    with session_scope() as session:
        assert redispatch_lost_runs(get_settings(), db_session=session) == []  # not yet: within the timeout
    time.sleep(0.4)
    with session_scope() as session:
        assert redispatch_lost_runs(get_settings(), db_session=session) == [
            f"run {run_id} sent again from its training stage (sending 2)"
        ]
    [message] = (tmp_path / "broker" / "queue").iterdir()
    body = message.read_text()
    assert "fabric.train" in body and "fabric.build_dataset" not in body
    with session_scope() as session:
        assert redispatch_lost_runs(get_settings(), db_session=session) == []  # timed from the new sending
    time.sleep(0.4)
    with session_scope() as session:
        [line] = redispatch_lost_runs(get_settings(), db_session=session)
        run = session.get(TrainingRun, run_id)
    assert run.status == "failed" and "training stage never started after dataset finished, over 2 sendings" in run.error
    assert line == f"run {run_id} failed: {run.error}"


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_a_stage_message_lost_in_redis_the_run_still_finishes(configure, postgres_url, redis_url, tmp_path):
    """Real Redis, real workers: the dataset stage finishes and its chain sends the training stage
    to the `gpu` queue, where the message is deleted before any worker reads it. The API's sweep
    sends the run again from its training stage, a `gpu` worker takes it, and the run succeeds."""
    env = {
        "DATABASE_URL": postgres_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "FABRIC_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "FABRIC_RATE_LIMIT_PER_S": "0",
        "FABRIC_TRAINING_QUEUE": "gpu",
        "FABRIC_RUN_DISPATCH_TIMEOUT_S": "8",  # a worker's first task imports TensorFlow: seconds
        "FABRIC_RUN_SWEEP_INTERVAL_S": "0.5",
    }
    configure(**env)
    _empty_runs()
    broker = redis.Redis.from_url(redis_url)
    broker.delete("gpu")
    with TestClient(create_app()) as client:
        for snapshot in synthetic_snapshots(60, seed=5):
            assert client.post("/stem-separation", content=json.dumps(snapshot), headers=FETCH_HEADERS).status_code == 201
    with session_scope() as session:
        run_id = start_run(RunParameters(run_label="lost-stage", epochs=2, candidates=["tiny"]), db_session=session).id
    with worker_process(env, queue="cpu", log_path=tmp_path / "cpu.log"):
        deadline = time.monotonic() + 120
        while True:  # the dataset stage done, the training stage's message waiting in Redis
            with session_scope() as session:
                run = session.get(TrainingRun, run_id)
            if run.stage_finished_at is not None and broker.llen("gpu") == 1:
                break
            assert run.status == "running" or run.status == "queued", run.error
            assert time.monotonic() < deadline, (run.status, run.stage)
            time.sleep(0.1)
        assert run.stage == "dataset"
        broker.delete("gpu")  # lost: a Redis restart without its append-only file
        with TestClient(create_app()), worker_process(env, queue="gpu", name="gpu", log_path=tmp_path / "gpu.log"):
            deadline = time.monotonic() + 180
            while True:
                with session_scope() as session:
                    run = session.get(TrainingRun, run_id)
                if run.status not in ("queued", "running"):
                    break
                assert time.monotonic() < deadline, (run.status, run.stage)
                time.sleep(0.3)
    assert run.status == "succeeded" and run.dispatches == 2, (run.status, run.error)
    assert "fabric.train" in (tmp_path / "gpu.log").read_text()
    assert (tmp_path / "cpu.log").read_text().count("fabric.build_dataset[") >= 1
