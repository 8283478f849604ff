"""Celery tasks. Each is a thin wrapper over a plain function in app/."""

import socket

from sqlalchemy import text

from app.config import get_settings
from app.database import get_engine
from workers.celery_app import app


@app.task(name="fabric.ping")
def ping() -> dict[str, str]:
    """Proves a worker is up, reads its settings and reaches the database."""
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
    return {"worker": socket.gethostname(), "kind": get_settings().worker_kind, "database": "ok"}
