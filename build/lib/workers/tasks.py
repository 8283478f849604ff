"""Celery tasks: thin wrappers over app/ services. A full run is a chain of four tasks;
each is acknowledged late and idempotent (see app/training_runs/service.py)."""

import socket

from celery import Celery, chain
from sqlalchemy import text

from app.config import get_settings
from app.database import get_engine
from app.training_runs import service as runs
from workers.celery_app import app


@app.task(name="fabric.ping")
def ping() -> dict[str, str]:
    """Proves a worker is up, reads its settings and reaches the database."""
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
    return {"worker": socket.gethostname(), "kind": get_settings().worker_kind, "database": "ok"}


def _stage(function, run_id: int, hostname: str | None):
    try:
        return function(run_id, get_settings().artifacts_dir, hostname or socket.gethostname())
    except Exception as error:
        runs.mark_failed(run_id, error)
        raise


@app.task(name="fabric.build_dataset", bind=True)
def build_dataset(self, run_id: int) -> int:
    return _stage(runs.dataset_stage, run_id, self.request.hostname)


@app.task(name="fabric.train", bind=True)
def train(self, run_id: int) -> int:
    return _stage(runs.training_stage, run_id, self.request.hostname)


@app.task(name="fabric.evaluate", bind=True)
def evaluate(self, run_id: int) -> dict:
    return _stage(runs.evaluation_stage, run_id, self.request.hostname)


@app.task(name="fabric.publish", bind=True)
def publish(self, run_id: int) -> str:
    return _stage(runs.publishing_stage, run_id, self.request.hostname)


def pipeline(run_id: int, celery: Celery = app, training_queue: str | None = None) -> chain:
    """A full run as a chain: dataset and evaluation on CPU workers, training on the training
    queue (a GPU worker's, if set). `.apply_async()` enqueues it."""
    training_queue = training_queue or get_settings().training_queue

    def step(name: str, queue: str):
        return celery.signature(name, args=[run_id], immutable=True, queue=queue)

    # Export needs TensorFlow, which GPU workers may lack: publishing runs on a CPU worker.
    return chain(
        step("fabric.build_dataset", "cpu"),
        step("fabric.train", training_queue),
        step("fabric.evaluate", "cpu"),
        step("fabric.publish", "cpu"),
    )
