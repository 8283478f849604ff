"""Two machines' worth of service against one object store: two API processes and two Celery
workers, each with a local disk of its own, one Postgres, one Redis, one S3-compatible store
(moto's server). A run started through one API is trained by a worker that is SIGKILLed
mid-training, resumed from its last checkpoint by the other worker (which never saw the first
one's disk), published, and its files are downloaded through the other API, byte for byte
what the manifest's SHA-256 says."""

import hashlib
import json
import time

import httpx
import obstore
import pytest
from sqlalchemy import delete

from app.artifacts import get_store
from app.auth.models import ApiToken
from app.auth.service import create_token
from app.datasets.models import Dataset
from app.db.engine import session_scope
from app.snapshots.models import Snapshot
from app.stem_models.models import ModelPromotion, StemModel
from app.training_runs.models import TrainingRun
from tests.support import FETCH_HEADERS
from tests.support.servers import api_process, free_port, object_store_server, worker_process
from training.synthetic import synthetic_snapshots

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def shared_env(configure, postgres_url, redis_url, tmp_path):
    with object_store_server() as store_env:
        env = {
            "DATABASE_URL": postgres_url,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_RESULT_BACKEND": redis_url,
            "FABRIC_RATE_LIMIT_PER_S": "0",
            # A killed worker's task goes to the other one after this long.
            "FABRIC_TASK_VISIBILITY_TIMEOUT_S": "3",
            **store_env,
        }
        configure(**env, FABRIC_ARTIFACTS_DIR=str(tmp_path / "test-process"))
        with session_scope() as session:
            for table in (ModelPromotion, StemModel, TrainingRun, Dataset, Snapshot, ApiToken):
                session.execute(delete(table))
            token, _ = create_token("ops", "operator", db_session=session)
        yield env, {"Authorization": f"Bearer {token}"}


def machine(env: dict, tmp_path, name: str) -> dict:
    """The environment of one machine: the shared services, and a local disk of its own."""
    return {**env, "FABRIC_ARTIFACTS_DIR": str(tmp_path / name / "artifacts")}


def test_a_run_survives_its_worker_and_is_served_by_another_api(shared_env, tmp_path):
    env, operator = shared_env
    with (
        api_process(machine(env, tmp_path, "api-1"), log_path=tmp_path / "api-1.log") as first_api,
        api_process(machine(env, tmp_path, "api-2"), log_path=tmp_path / "api-2.log") as second_api,
    ):
        for snapshot in synthetic_snapshots(120, seed=22):
            posted = httpx.post(f"{first_api}/stem-separation", content=json.dumps(snapshot), headers=FETCH_HEADERS)
            assert posted.status_code == 201
        started = httpx.post(
            f"{first_api}/runs",
            json={"runLabel": "scale-out", "epochs": 40, "batchSize": 4, "candidates": ["tiny"]},
            headers=operator,
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]

        first_disk = tmp_path / "worker-1" / "artifacts"
        with worker_process(machine(env, tmp_path, "worker-1"), log_path=tmp_path / "worker-1.log", name="worker-1") as first:
            epoch = wait_for(lambda: run_view(first_api, run_id, operator)["epoch"] or 0, lambda e: e >= 3, 180)
            first.kill()  # SIGKILL: no warm shutdown, the task is never acknowledged
            first.wait()
        assert (first_disk / "runs" / str(run_id) / "tiny" / "state.json").exists()

        metrics_port = free_port()
        second_worker = machine(env, tmp_path, "worker-2") | {"FABRIC_WORKER_METRICS_PORT": str(metrics_port)}
        with worker_process(second_worker, log_path=tmp_path / "worker-2.log", name="worker-2"):
            run = wait_for(lambda: run_view(second_api, run_id, operator), lambda r: r["status"] in ("succeeded", "failed"), 240)
            worker_metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert run["status"] == "succeeded", (run["error"], (tmp_path / "worker-2.log").read_text()[-3000:])
        assert run["worker"].startswith("worker-2@")
        assert run["resumedFromEpoch"] is not None and run["resumedFromEpoch"] >= epoch
        assert [h["epoch"] for h in run["history"]] == list(range(len(run["history"])))  # no restart, no gap
        # The second worker counted and timed the stages it carried out, and logged them as JSON.
        for stage in ("fabric.train", "fabric.evaluate", "fabric.publish"):
            assert f'fabric_worker_tasks_total{{state="success",task="{stage}"}} 1.0' in worker_metrics
            assert f'fabric_worker_task_seconds_count{{state="success",task="{stage}"}} 1.0' in worker_metrics
        lines = [json.loads(line) for line in (tmp_path / "worker-2.log").read_text().splitlines() if line.startswith("{")]
        assert any(line.get("task") == "fabric.train" and line.get("task_id") for line in lines)

        # Everything lives in the bucket: the dataset, the run's checkpoints, the model.
        stored = {meta["path"].split("/")[0] for batch in obstore.list(get_store()._store) for meta in batch}
        assert stored == {"datasets", "runs", "models"}

        models = httpx.get(f"{second_api}/models", headers=operator).json()
        (model,) = [m for m in models if m["runId"] == run_id]
        if not model["isLatest"]:  # the gate may reject a tiny model: serving is what is tested here
            promoted = httpx.post(
                f"{second_api}/models/{model['id']}/promote", json={"force": True, "reason": "scale-out test"}, headers=operator
            )
            assert promoted.status_code == 200, promoted.text
        latest = wait_for(lambda: httpx.get(f"{second_api}/models/latest"), lambda r: r.status_code == 200, 10).json()
        assert latest["version"] == model["version"]
        for file in latest["files"]:
            assert file["url"].startswith(second_api)
            response = httpx.get(file["url"])
            assert response.status_code == 200, (file["path"], response.text)
            assert hashlib.sha256(response.content).hexdigest() == file["sha256"] == response.headers["etag"].strip('"')
            assert len(response.content) == file["size"] and "immutable" in response.headers["cache-control"]
        # Neither API wrote a model file to its own disk: they stream from the bucket.
        assert not any((tmp_path / name / "artifacts").exists() for name in ("api-1", "api-2"))


def run_view(api: str, run_id: int, headers: dict) -> dict:
    return httpx.get(f"{api}/runs/{run_id}", headers=headers).json()


def wait_for(read, done, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still {value!r} after {timeout_s} s")
        time.sleep(0.1)
