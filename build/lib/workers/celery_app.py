"""The Celery application. Production: Redis broker and result backend. Embedded default
(`make run`): kombu's filesystem transport and Celery's file result backend under var/,
so a newcomer needs no servers. CPU and GPU workers run this same code; `FABRIC_WORKER_KIND`
picks the queue they listen on."""

import functools

from celery import Celery

from app.config import Settings, get_settings

def create_celery(settings: Settings) -> Celery:
    broker = settings.celery_broker_url
    backend = settings.celery_result_backend
    # Redis hands an unacknowledged task to another worker after this long (a worker that died
    # mid-task never acknowledges it). It must outlast the longest task, or a task still
    # running is delivered twice (harmless here: every stage is idempotent and resumes).
    transport_options: dict = {"visibility_timeout": settings.task_visibility_timeout_s}
    if broker.startswith("filesystem://"):
        queue_dir, results_dir = settings.embedded_broker_dir / "queue", settings.embedded_broker_dir / "results"
        queue_dir.mkdir(parents=True, exist_ok=True)
        transport_options |= {"data_folder_in": str(queue_dir), "data_folder_out": str(queue_dir), "store_processed": False}
        if backend is None:
            results_dir.mkdir(parents=True, exist_ok=True)
            backend = f"file://{results_dir}"

    celery = Celery("prime_fabric", broker=broker, backend=backend, include=["workers.tasks"])
    celery.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
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


app = create_celery(get_settings())


@functools.lru_cache
def get_sender() -> Celery:
    """The Celery app the API sends tasks with, built from the settings in force (the worker's
    `app` above is built once, at import)."""
    return create_celery(get_settings())
