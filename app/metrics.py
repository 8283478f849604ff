"""Prometheus metrics: what operators watch instead of hearing about a problem from users.

This module is the top of the house: the request middleware (latency by route template, and
the request's id and access line), the /metrics route, and the collector that asks the
services about runs, models and quarantine at scrape time. The counters themselves are in
app/counters.py, which the code that counts imports; with several API processes,
PROMETHEUS_MULTIPROC_DIR lets /metrics add them up (prometheus_client's multiprocess mode).
"""

import os
import time

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.dependencies import require
from app.counters import REQUEST_SECONDS
from app.logs import log_access, log_context, request_id_of


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
