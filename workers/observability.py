"""What a worker tells operators: its logs as the API writes them (app/logs.py), each line with
the task's id and name, and Prometheus metrics of its tasks, served by the worker's main process
on FABRIC_WORKER_METRICS_PORT (prometheus_client's multiprocess mode gathers what its child
processes counted; workers/celery_app.py picks the folder before anything imports the client).

A run's stages are tasks (fabric.build_dataset, fabric.train, fabric.evaluate, fabric.publish),
so `fabric_worker_task_seconds` is also the run's stage durations. Labels come from closed sets:
our task names and Celery's states.
"""

import logging.config
import time

from celery.signals import setup_logging, task_postrun, task_prerun, worker_init
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server

from app.config import get_settings
from app.logs import log_context, logging_config

TASKS = Counter("fabric_worker_tasks_total", "Tasks a worker carried out, by task and final state", ["task", "state"])
TASK_SECONDS = Histogram(
    "fabric_worker_task_seconds",
    "How long a task ran (for a run's stages: the stage's duration), by task and final state",
    ["task", "state"],
    buckets=(0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600),
)

# When each task in flight in this process started: at most the process's concurrency entries.
_started: dict[str, float] = {}


@setup_logging.connect
def configure_logging(**_) -> None:
    logging.config.dictConfig(logging_config(get_settings()))


@worker_init.connect
def serve_metrics(**_) -> None:
    port = get_settings().worker_metrics_port
    if port:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(port, registry=registry)


@task_prerun.connect
def task_started(task_id: str, task, **_) -> None:
    _started[task_id] = time.perf_counter()
    log_context.set({"task_id": task_id, "task": task.name})


@task_postrun.connect
def task_finished(task_id: str, task, state: str | None = None, **_) -> None:
    started = _started.pop(task_id, None)
    state = (state or "unknown").lower()
    TASKS.labels(task.name, state).inc()
    if started is not None:
        TASK_SECONDS.labels(task.name, state).observe(time.perf_counter() - started)
    log_context.set(None)
