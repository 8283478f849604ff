"""Models over HTTP: the latest weights for Studio (public, cacheable) and the registry for
operators (token required)."""

import asyncio
import functools
import hashlib
import logging
import time

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy.exc import SQLAlchemyError

from app.artifacts import StoreUnavailable, get_store
from app.auth.dependencies import require
from app.auth.models import ApiToken
from app.db.base import RowId
from app.db.engine import session_scope
from app.http_caching import etag_matches
from app.stem_models import service
from app.stem_models.schemas import LatestManifest, ModelSummary, PromoteRequest, PromotionRecord

log = logging.getLogger("prime_fabric")
router = APIRouter(tags=["models"])
IMMUTABLE = "public, max-age=31536000, immutable"
RETRY_LATER = {"Retry-After": "5"}  # the artifact store could not give a file


@router.get(
    "/models/latest",
    response_model=LatestManifest,
    summary="The latest weights for Studio",
    responses={304: {"description": "Not modified (If-None-Match)"}, 404: {"description": "Nothing published"}},
)
async def latest(request: Request, channel: str = "stem-separation"):
    if channel not in request.app.state.settings.channels:
        raise HTTPException(404, f"unknown channel {channel[:64]!r}")
    key = (_public_base_url(request), channel)  # at most (public base URLs x channels) entries
    cached = _latest_cache.get(key)
    # Studio polls constantly: answer from memory, and look for a newer promotion (one small
    # indexed query) so that no answer is older than LATEST_RECHECK_S. The look starts in the
    # background at half that age, one at a time, while polls go on being answered from memory;
    # a poll waits for it only past the full age (after a quiet spell). Each poll starting or
    # awaiting its own look made stalls under load (docs/decisions/latest-manifest-from-memory.md).
    age = time.monotonic() - cached[0] if cached is not None else float("inf")
    if age > LATEST_RECHECK_S / 2:
        refresh = _refreshing.get(key)
        if refresh is None or refresh.get_loop() is not asyncio.get_running_loop():  # (tests run several loops)
            refresh = _refreshing[key] = asyncio.ensure_future(run_in_threadpool(_refresh_latest, key, cached))
            refresh.add_done_callback(functools.partial(_refreshed, key))
        if age > LATEST_RECHECK_S:
            if cached is None:
                cached = await refresh  # nothing in memory: a database outage is a 503
            else:
                # With an answer in memory, a database that fails or hangs must not hold Studio
                # up: what was latest when it was last seen still is, as far as anyone can tell.
                try:
                    cached = await asyncio.wait_for(asyncio.shield(refresh), LATEST_STALE_WAIT_S)
                except (SQLAlchemyError, TimeoutError):
                    pass
    _checked_at, _promotion_id, payload, etag = cached
    if payload is None:
        raise HTTPException(404, "no model has been published yet")
    # no-cache: browsers keep it but ask each time; unchanged answers are a tiny 304.
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(payload, media_type="application/json", headers=headers)


LATEST_RECHECK_S = 0.5
LATEST_STALE_WAIT_S = 1.0  # past this, a poll gets the answer in memory while the look goes on


def _refreshed(key: tuple[str, str], refresh: asyncio.Future) -> None:
    if _refreshing.get(key) is refresh:
        del _refreshing[key]
    if not refresh.cancelled() and refresh.exception() is not None:
        # Polls awaiting it get the error (503 if the database is down); a later one tries again.
        log.warning("could not refresh /models/latest: %s", str(refresh.exception()).splitlines()[0])


def _refresh_latest(key: tuple[str, str], cached: tuple | None) -> tuple:
    """(checked at, promotion id, payload, etag), rebuilt only if the promotion changed."""
    with session_scope() as session:
        promotion_id = service.latest_promotion_id(db_session=session)
        if cached is not None and cached[1] == promotion_id:
            answer = cached[2:]
        elif promotion_id is None:
            answer = (None, None)
        else:
            answer = _latest_answer(service.latest_manifest(*key, db_session=session))
    _latest_cache[key] = (time.monotonic(), promotion_id, *answer)
    return _latest_cache[key]


_latest_cache: dict = {}


def _public_base_url(request: Request) -> str:
    """The configured public base URL this request came in by, else the first configured one."""
    configured = [url.rstrip("/") for url in request.app.state.settings.public_base_urls]
    asked = str(request.base_url).rstrip("/")
    return asked if asked in configured else configured[0]


_refreshing: dict[tuple[str, str], asyncio.Future] = {}


def _latest_answer(manifest: LatestManifest) -> tuple[str, str]:
    """The manifest as sent, and its ETag."""
    payload = manifest.model_dump_json(by_alias=True)
    return payload, '"' + hashlib.sha256(payload.encode()).hexdigest()[:32] + '"'


@router.get(
    "/models/{version}/files/{path:path}",
    summary="A published file (immutable)",
    responses={
        200: {
            "description": "model.json or a weight shard",
            "content": {"application/octet-stream": {"example": "(binary float32 weights)"}},
        },
        404: {"description": "No such model or file"},
    },
)
async def model_file(version: str, path: str, request: Request):
    listed, key = await run_in_threadpool(_published_files, version)
    # Only files the manifest lists are served: "..", absolute paths and anything else are 404.
    if path not in listed:
        raise HTTPException(404, "no such file")
    file = listed[path]
    headers = {"Cache-Control": IMMUTABLE, "ETag": f'"{file["sha256"]}"'}
    if etag_matches(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    media = "application/json" if path.endswith(".json") else "application/octet-stream"
    store = get_store()
    local = store.served_file(f"{key}/{path}")
    if local is not None:
        return FileResponse(local, media_type=media, headers=headers)
    # Streamed from the bucket rather than a redirect to a pre-signed URL: Studio fetches these
    # cross-origin with integrity checks, so they keep our CORS, ETag and immutable caching
    # (a CDN in front caches them), and the bucket stays private (docs/decisions/artifact-store.md).
    try:
        size, chunks = await store.stream(f"{key}/{path}")
    except (FileNotFoundError, StoreUnavailable) as error:
        log.error("model %s file %s: %s", version, path, error)
        raise HTTPException(503, "the artifact store cannot give this file now; try again later", RETRY_LATER) from None
    if size != file["size"]:  # a published file never changes: this is not the file the manifest names
        log.error("model %s file %s: %d bytes in the store, %d in the manifest", version, path, size, file["size"])
        raise HTTPException(503, "the stored file does not match the model's manifest", RETRY_LATER)
    return StreamingResponse(chunks, media_type=media, headers=headers | {"Content-Length": str(size)})


def _published_files(version: str) -> tuple[dict[str, dict], str | None]:
    """The files a published model's manifest lists, by path, and its artifact key."""
    with session_scope() as session:
        model = service.get_by_version(version, db_session=session)
        if model is None:
            return {}, None
        return {f["path"]: f for f in model.manifest.get("files", [])}, model.artifact_key


@router.get("/models", response_model=list[ModelSummary], summary="Every model, published and rejected")
def list_models(_: ApiToken = Depends(require("operator"))):
    with session_scope() as session:
        return service.summaries(service.get_all(db_session=session), db_session=session)


@router.post("/models/{model_id}/promote", response_model=PromotionRecord, summary="Make a model latest")
def promote(model_id: RowId, body: PromoteRequest | None = None, token: ApiToken = Depends(require("operator"))):
    with session_scope() as session:
        body = body or PromoteRequest()
        try:
            promotion = service.promote(
                model_id, f"token:{token.id}:{token.name}", body.reason, force=body.force, db_session=session
            )
        except LookupError as error:
            raise HTTPException(404, str(error)) from None
        except service.GateRejected as error:
            raise HTTPException(409, str(error)) from None
        return PromotionRecord.model_validate(promotion, from_attributes=True)


@router.post("/models/rollback", response_model=PromotionRecord, summary="Make the previous latest model latest again")
def rollback(token: ApiToken = Depends(require("operator"))):
    with session_scope() as session:
        try:
            promotion = service.rollback(f"token:{token.id}:{token.name}", db_session=session)
        except LookupError as error:
            raise HTTPException(409, str(error)) from None
        return PromotionRecord.model_validate(promotion, from_attributes=True)


@router.get("/models/promotions", response_model=list[PromotionRecord], summary="Who made which model latest, when")
def promotions(_: ApiToken = Depends(require("operator"))):
    with session_scope() as session:
        return [PromotionRecord.model_validate(p, from_attributes=True) for p in service.get_promotions(db_session=session)]
