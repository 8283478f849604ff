"""What `celery -A workers.celery_app worker` loads: the one Celery app (app/broker.py), with
the tasks of workers/tasks.py on it and the logging and metrics of workers/observability.py.
CPU and GPU workers run this same code; `FABRIC_WORKER_KIND` says which kind a worker is,
`--queues` what it listens to."""

import os
import tempfile

# Tasks run in the worker's child processes and count there; the main process serves what they
# all counted from this folder. prometheus_client picks its mode when first imported: set it first.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="fabric-worker-metrics-")

import workers.observability  # noqa: E402, F401  (signal handlers)
from app.broker import get_celery  # noqa: E402

app = get_celery()
