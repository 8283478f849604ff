"""Logs: one JSON object a line (FABRIC_LOG_FORMAT=json, the default) or plain text, from the API
and the workers alike, each line carrying what it happened in: the request's id (the client's
`X-Request-ID`, when it is a sane one, else a new one, sent back in the answer; set by
metrics.RequestMiddleware) or the task's id and name. An access line per request, at INFO, says
what was asked and answered, how fast.
"""

import contextvars
import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime

from starlette.types import Scope

from app.config import Settings

# What a log line happened in: {"request_id": ...} or {"task_id": ..., "task": ...}.
log_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar("log_context", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
# A client's request id is kept only when it cannot forge or break a log line.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# A record's own attributes (and uvicorn's colour copy of its message): not extras.
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName", "color_message"}

access_log = logging.getLogger("prime_fabric.access")


class ContextFilter(logging.Filter):
    """Puts the current request's or task's identifiers on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (log_context.get() or {}).items():
            setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, message, its context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line |= {name: value for name, value in vars(record).items() if name not in _RECORD_FIELDS}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def logging_config(settings: Settings) -> dict:
    """A logging.config.dictConfig for the API (uvicorn's own loggers included) and workers."""
    formatter = (
        {"()": JsonFormatter}
        if settings.log_format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s", "datefmt": "%Y-%m-%dT%H:%M:%S"}
    )
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {"context": {"()": ContextFilter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["context"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        # uvicorn's loggers go through ours; its access log is replaced by ours (log_access).
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def log_access(scope: Scope, status: int, started: float) -> None:
    """A request's access line: what was asked, the answer's status, how long it took."""
    if access_log.isEnabledFor(logging.INFO):
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        method, path = scope["method"], scope["path"][:256]
        extra = {"method": method, "path": path, "status": status, "duration_ms": elapsed_ms}
        access_log.info("%s %s %d %.1f ms", method, path, status, elapsed_ms, extra=extra)
