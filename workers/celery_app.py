"""What `celery -A workers.celery_app worker` loads: the one Celery app (app/broker.py), with
the tasks of workers/tasks.py on it. CPU and GPU workers run this same code;
`FABRIC_WORKER_KIND` says which kind a worker is, `--queues` what it listens to."""

from app.broker import get_celery

app = get_celery()
