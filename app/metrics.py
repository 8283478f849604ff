"""Prometheus metrics: what operators watch instead of hearing about a problem from users.

Counters and histograms live in each API process; with several processes, set
PROMETHEUS_MULTIPROC_DIR (an empty folder shared by them) and /metrics adds them up
(prometheus_client's multiprocess mode). Label values come from closed sets (configured
channels, outcome names, rejection reasons, route templates), so the series stay bounded.
"""

import os
import time

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.dependencies import require
from app.logs import log_access, log_context, request_id_of

INGEST_SNAPSHOTS = Counter(
    "fabric_ingest_snapshots_total",
    "Snapshots (or whole requests refused before any snapshot was read) by outcome",
    ["channel", "outcome", "reason"],
)
RATE_LIMITED = Counter("fabric_rate_limited_total", "Requests answered 429 by the per-client rate limit")
REQUEST_SECONDS = Histogram(
    "fabric_http_request_duration_seconds",
    "Time from a request's start to its answer's start",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 30),
)
INGEST_BATCH = Histogram(
    "fabric_ingest_batch_requests", "Ingest requests stored per transaction", buckets=(1, 2, 4, 8, 16, 32, 64)
)
INGEST_COMMIT_SECONDS = Histogram(
    "fabric_ingest_commit_seconds",
    "Time the ingest writer took to store a batch",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 15),
)


def count_ingest(channel: str | None, outcome: str, reason: str | None = None, channels: list[str] | None = None) -> None:
    known = channel if channel and channels is not None and channel in channels else "unknown"
    INGEST_SNAPSHOTS.labels(channel=known, outcome=outcome, reason=(reason or "")[:64]).inc()


class RequestMiddleware:
    """Every HTTP request: an id that its log lines carry (and its answer, as X-Request-ID), its
    latency in the histogram labelled by its route's template (never the raw path), and its
    access line (app/logs.py). One middleware, so each request is wrapped once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        context = log_context.set({"request_id": request_id})
        started, status = time.perf_counter(), 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = getattr(scope.get("route"), "path", "unmatched")
                REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(time.perf_counter() - started)
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            log_access(scope, status, started)
            log_context.reset(context)


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (operator token)",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/plain": {
                    "example": 'fabric_ingest_snapshots_total{channel="stem-separation",outcome="stored",reason=""} 12.0'
                }
            }
        }
    },
)
def metrics(_=Depends(require("operator"))) -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    state = CollectorRegistry()
    state.register(ServiceState())
    return Response(generate_latest(registry) + generate_latest(state), media_type=CONTENT_TYPE_LATEST)


class ServiceState:
    """What the database says at scrape time: runs by status, the quarantine, the model served."""

    def describe(self):
        """The families without their values (so registering does not query the database)."""
        yield GaugeMetricFamily("fabric_training_runs", "Training runs by status", labels=["status"])
        yield GaugeMetricFamily("fabric_quarantine_rows", "Rejected items kept in quarantine")
        yield CounterMetricFamily("fabric_quarantine_rejections", "Rejections counted in quarantine")
        yield GaugeMetricFamily("fabric_model_served", "The model /models/latest serves (1)", labels=["version"])

    def collect(self):
        from app.db.engine import session_scope
        from app.quarantine import service as quarantine
        from app.stem_models import service as stem_models
        from app.training_runs import service as runs
        from app.training_runs.models import STATUSES

        with session_scope() as session:
            by_status = runs.count_by_status(db_session=session)
            rows, occurrences = quarantine.count(db_session=session)
            champion = stem_models.current_champion(db_session=session)
        family = GaugeMetricFamily("fabric_training_runs", "Training runs by status", labels=["status"])
        for status in STATUSES:
            family.add_metric([status], by_status.get(status, 0))
        yield family
        yield GaugeMetricFamily("fabric_quarantine_rows", "Rejected items kept in quarantine", value=rows)
        yield CounterMetricFamily("fabric_quarantine_rejections", "Rejections counted in quarantine", value=occurrences)
        served = GaugeMetricFamily("fabric_model_served", "The model /models/latest serves (1)", labels=["version"])
        if champion is not None:
            served.add_metric([champion.version], 1)
        yield served
