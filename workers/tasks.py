"""Celery tasks: thin wrappers over app/ services. A full run is a chain of four tasks
(app/broker.py sends it); each is acknowledged late and idempotent (see
app/training_runs/stages.py)."""

import logging
import socket

from celery.exceptions import Ignore

from app.artifacts import get_store
from app.config import get_settings
from app.db.engine import ping_database
from app.training_runs import stages
from workers.celery_app import app


@app.task(name="fabric.ping")
def ping() -> dict[str, str]:
    """Proves a worker is up, reads its settings and reaches the database."""
    ping_database()
    return {"worker": socket.gethostname(), "kind": get_settings().worker_kind, "database": "ok"}


log = logging.getLogger(__name__)


def _stage(function, run_id: int, dispatch: int | None, hostname: str | None):
    try:
        result = function(run_id, get_store(), hostname or socket.gethostname(), dispatch)
    except stages.StaleDispatch as stale:
        log.warning("%s; dropped", stale)
        raise Ignore() from None  # acknowledged, and the rest of this chain is not sent
    except Exception as error:
        stages.mark_failed(run_id, error)
        raise
    stages.finish_stage(run_id, dispatch)  # the chain sends the next stage now; the API's sweep watches that it starts
    return result


@app.task(name="fabric.build_dataset", bind=True)
def build_dataset(self, run_id: int, dispatch: int | None = None) -> int:
    return _stage(stages.dataset_stage, run_id, dispatch, self.request.hostname)


@app.task(name="fabric.train", bind=True)
def train(self, run_id: int, dispatch: int | None = None) -> int:
    return _stage(stages.training_stage, run_id, dispatch, self.request.hostname)


@app.task(name="fabric.evaluate", bind=True)
def evaluate(self, run_id: int, dispatch: int | None = None) -> dict:
    return _stage(stages.evaluation_stage, run_id, dispatch, self.request.hostname)


@app.task(name="fabric.publish", bind=True)
def publish(self, run_id: int, dispatch: int | None = None) -> str:
    return _stage(stages.publishing_stage, run_id, dispatch, self.request.hostname)
