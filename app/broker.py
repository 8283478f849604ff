"""The one Celery application, and how the API sends work to the workers.

Production: Redis broker and result backend. Embedded default (`make run`): kombu's filesystem
transport and Celery's file result backend under var/, so a newcomer needs no servers. Tasks
are sent by name, so app/ never imports workers/ (which defines them on this same app).
"""

import functools
import logging
import sys

from celery import Celery, chain
from kombu.exceptions import OperationalError as KombuOperationalError

from app.config import Settings, get_settings

log = logging.getLogger(__name__)

# A run's stages, in order, as (task name, queue); None is the training queue (a GPU worker's, if
# set). Export needs TensorFlow, which GPU workers may lack: publishing runs on a CPU worker.
RUN_STAGES = (("fabric.build_dataset", "cpu"), ("fabric.train", None), ("fabric.evaluate", "cpu"), ("fabric.publish", "cpu"))

# How long sending may take before the broker counts as unavailable: a connection attempt of
# at most 1 s, tried twice.
SEND_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


class BrokerUnavailable(Exception):
    """The broker did not take the message: nothing was sent."""


def create_celery(settings: Settings) -> Celery:
    broker = settings.celery_broker_url
    backend = settings.celery_result_backend
    # Redis hands an unacknowledged task to another worker after this long (a worker that died
    # mid-task never acknowledges it). It must outlast the longest task, or a task still
    # running is delivered twice (harmless here: every stage is idempotent and resumes).
    transport_options: dict = {"visibility_timeout": settings.task_visibility_timeout_s}
    if broker.startswith(("redis://", "rediss://")):
        transport_options["socket_connect_timeout"] = 0.75  # with one retry: BrokerUnavailable in < 2 s
    if broker.startswith("filesystem://"):
        queue_dir, results_dir = settings.embedded_broker_dir / "queue", settings.embedded_broker_dir / "results"
        queue_dir.mkdir(parents=True, exist_ok=True)
        transport_options |= {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "store_processed": False,
            "control_folder": str(settings.embedded_broker_dir / "control"),
        }
        if backend is None:
            results_dir.mkdir(parents=True, exist_ok=True)
            backend = f"file://{results_dir}"

    celery = Celery("prime_fabric", broker=broker, backend=backend, include=["workers.tasks"])
    celery.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A task is acknowledged only once it has finished, and a worker that dies mid-task
        # hands it back to the queue: long pipeline tasks must never be lost.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="cpu",
        result_expires=7 * 24 * 3600,
        worker_hijack_root_logger=False,
    )
    return celery


@functools.lru_cache
def get_celery() -> Celery:
    """The process's Celery app, built from the settings in force (workers/celery_app.py
    exposes this same one to `celery -A`)."""
    return create_celery(get_settings())


def worker_argv(queue: str, hostname: str, *options: str) -> list[str]:
    """The command line of a Celery worker process of ours on one queue (`fabric serve`, tests)."""
    app = ["-A", "workers.celery_app", "worker"]
    return [sys.executable, "-m", "celery", *app, "--queues", queue, "--hostname", hostname, *options]


def run_pipeline(run_id: int, dispatch: int, training_queue: str | None = None, first_stage: int = 0) -> chain:
    """A run's stages as one chain, from `first_stage` on. `dispatch` numbers this sending of
    the run: a worker drops a message whose number is not the run's latest (one sent again)."""
    celery = get_celery()
    training_queue = training_queue or get_settings().training_queue
    return chain(
        celery.signature(name, args=[run_id], kwargs={"dispatch": dispatch}, immutable=True, queue=queue or training_queue)
        for name, queue in RUN_STAGES[first_stage:]
    )


def send_run(run_id: int, dispatch: int, first_stage: int = 0) -> None:
    """Queues a run's pipeline (from `first_stage` on); BrokerUnavailable within ~2 s when the
    broker cannot take it."""
    try:
        # Its state is the run row; no result is kept (waiting on one would also hold a
        # connection to the result backend, retried for 20 s when Redis is down).
        run_pipeline(run_id, dispatch, first_stage=first_stage).apply_async(
            retry=True, retry_policy=SEND_RETRY_POLICY, ignore_result=True
        )
    except (KombuOperationalError, OSError) as error:
        raise BrokerUnavailable(f"the task broker is unavailable: {error}") from error
