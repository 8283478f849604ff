"""The FastAPI application: routers, middleware and error answers, wired from settings."""

import asyncio
import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from psycopg.errors import UndefinedColumn, UndefinedTable
from sqlalchemy.exc import ProgrammingError

from app import metrics
from app.config import Settings, get_settings
from app.dashboard import views as dashboard_views
from app.datasets import views as dataset_views
from app.db.engine import UNAVAILABLE_ERRORS, ping_database, session_scope
from app.db.migrate import head_revision, schema_problem
from app.limits import (
    BodyLimitMiddleware,
    BodyTimeout,
    BodyTooLarge,
    RateLimitMiddleware,
    body_timeout_handler,
    body_too_large_handler,
)
from app.logs import REQUEST_ID_HEADER
from app.metrics import RequestMiddleware
from app.quarantine import views as quarantine_views
from app.snapshots import views as snapshot_views
from app.snapshots.schemas import CHANNEL_HEADER, Snapshot
from app.snapshots.writer import IngestBacklogFull
from app.stats import views as stats_views
from app.stem_models import views as model_views
from app.studio import views as studio_views
from app.training_runs import views as run_views
from app.training_runs.flows import redispatch_lost_runs

log = logging.getLogger("prime_fabric")

GC_YOUNG_THRESHOLD = 20_000

DESCRIPTION = """Prime Fabric takes Studio's stem-separation snapshots (feature vectors, never
audio), builds datasets from them, trains the stem model and publishes TF.js weights.

Studio's export URL is **`https://<this host>/stem-separation`**: POST one snapshot as JSON
(`X-Prime-Fabric-Channel: stem-separation`), or as `text/plain` from `navigator.sendBeacon`."""


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Everything imported so far lives as long as the process: frozen, full collections do not
    # walk it. A snapshot's parsed objects live until its commit, so with the default young
    # threshold they were promoted and full collections paused the process every second or so;
    # cyclic garbage is still collected, after 20,000 net new objects (docs/decisions/gc-settings.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
    sweeper = asyncio.create_task(_redispatch_lost_runs_every(app.state.settings.run_sweep_interval_s))
    yield
    sweeper.cancel()


async def _redispatch_lost_runs_every(interval_s: float) -> None:
    """Runs whose message never reached a worker are sent again (training_runs/flows.py)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(_redispatch_lost_runs)
        except Exception as error:  # the database or broker down: the next sweep tries again
            log.warning("looking for lost runs failed: %s", str(error).splitlines()[0] if str(error) else repr(error))


def _redispatch_lost_runs() -> None:
    with session_scope() as session:
        redispatch_lost_runs(get_settings(), db_session=session)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Prime Fabric", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.include_router(snapshot_views.router)
    app.include_router(model_views.router)
    app.include_router(run_views.router)
    app.include_router(dataset_views.router)
    app.include_router(studio_views.router)
    app.include_router(metrics.router)
    app.include_router(quarantine_views.router)
    app.include_router(stats_views.router)
    dashboard_views.install(app)

    @app.get(
        "/healthz",
        tags=["health"],
        summary="Liveness and database reachability",
        responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
    )
    def healthz() -> dict[str, str]:
        ping_database()
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: the database is reachable and its schema is this code's",
        responses={
            200: {"content": {"application/json": {"example": {"status": "ready", "revision": "0012"}}}},
            503: {"description": "Not ready, and why (database unreachable, or its schema not at this code's revision)"},
        },
    )
    def readyz() -> JSONResponse:
        try:
            problem = schema_problem()
        except UNAVAILABLE_ERRORS as error:
            problem = f"database unreachable: {str(error).splitlines()[0]}"
        if problem:
            return JSONResponse({"status": "not ready", "detail": problem}, status_code=503, headers={"Retry-After": "5"})
        return JSONResponse({"status": "ready", "revision": head_revision()})

    app.add_exception_handler(BodyTooLarge, body_too_large_handler)
    app.add_exception_handler(BodyTimeout, body_timeout_handler)
    for error in (*UNAVAILABLE_ERRORS, IngestBacklogFull):
        app.add_exception_handler(error, database_unavailable)
    app.add_exception_handler(ProgrammingError, schema_missing)

    # Added last = outermost: CORS headers go on every answer, 413 and 429 included, so a
    # browser shows Studio the real status rather than a CORS failure.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.request_body_timeout_s)
    app.add_middleware(RateLimitMiddleware, rate=settings.rate_limit_per_s, burst=settings.rate_limit_burst)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_allowed_origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "Content-Encoding", CHANNEL_HEADER, "Authorization", "If-None-Match", REQUEST_ID_HEADER],
        expose_headers=["ETag", "Retry-After", REQUEST_ID_HEADER],
        max_age=settings.cors_max_age_s,
    )
    # Outermost: every answer is timed and logged (429s included), every log line has its request's id.
    app.add_middleware(RequestMiddleware)
    app.openapi = lambda: _openapi(app)
    return app


SCHEMA_MISSING = "the database schema is not this code's (a table or column is missing): run `fabric db upgrade`"


async def database_unavailable(_request: Request, error: Exception) -> JSONResponse:
    # Nothing was stored (the transaction rolled back): Studio retries, and the retry is
    # absorbed as a duplicate if the commit did in fact land.
    reason = str(error).splitlines()[0]
    if "no such table" in reason or "no such column" in reason:  # SQLite's words for an unmigrated schema
        log.error("database schema missing: %s", reason)
        return JSONResponse({"detail": SCHEMA_MISSING}, status_code=503, headers={"Retry-After": "30"})
    log.warning("database unavailable: %s", reason)
    return JSONResponse({"detail": "database unavailable; retry shortly"}, status_code=503, headers={"Retry-After": "2"})


async def schema_missing(_request: Request, error: ProgrammingError) -> JSONResponse:
    """A table or column this code needs is not in the database (not migrated): 503 with the
    reason. Any other ProgrammingError is a bug, answered 500 as FastAPI would."""
    if isinstance(error.orig, UndefinedTable | UndefinedColumn):
        log.error("database schema missing: %s", str(error.orig).splitlines()[0])
        return JSONResponse({"detail": SCHEMA_MISSING}, status_code=503, headers={"Retry-After": "30"})
    log.exception("database programming error", exc_info=error)
    return JSONResponse({"detail": "Internal Server Error"}, status_code=500)


def _openapi(app: FastAPI) -> dict:
    """FastAPI's schema, plus the snapshot schema the ingest body refers to (the ingest
    views read raw bytes to accept beacons, gzip and NDJSON, so FastAPI cannot infer it)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        snapshot = Snapshot.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(snapshot.pop("$defs", {}))
        components["StemSeparationSnapshot"] = snapshot
        app.openapi_schema = schema
    return app.openapi_schema


app = create_app()
