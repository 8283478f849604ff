"""A real Celery worker process, on the real Redis broker and result backend, runs a task that
reaches the real Postgres."""

import uuid

import pytest

from app.broker import create_celery
from app.config import Settings
from tests.support.servers import worker_process

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def test_worker_process_runs_tasks_from_redis_and_reaches_postgres(postgres_url, redis_url, tmp_path):
    queue = f"test-{uuid.uuid4().hex[:8]}"  # no other worker listens here
    env = {
        "DATABASE_URL": postgres_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "FABRIC_WORKER_KIND": "gpu",
    }
    celery = create_celery(Settings(database_url=postgres_url, celery_broker_url=redis_url, celery_result_backend=redis_url))
    with worker_process(env, queue=queue, log_path=tmp_path / "worker.log"):
        result = celery.send_task("fabric.ping", queue=queue).get(timeout=60)
    assert result["database"] == "ok"
    assert result["kind"] == "gpu"  # the worker read its own settings from its environment
