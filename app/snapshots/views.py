"""POST endpoints Studio sends snapshots to. Thin: read the body within limits, work out the
channel, prepare the snapshots (service.prepare_request) and hand them to the ingest writer."""

import logging
from functools import cache
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from app.config import Settings
from app.counters import count_ingest
from app.db.engine import UNAVAILABLE_ERRORS
from app.limits import BodyTooLarge, client_address, refund_rate_limit
from app.quarantine.service import RequestContext
from app.snapshots import service
from app.snapshots.payload import ACCEPTED_TYPES
from app.snapshots.schemas import CHANNEL_HEADER, ErrorResponse, IngestResponse
from app.snapshots.writer import IngestBacklogFull, IngestWriter

router = APIRouter(tags=["ingest"])
log = logging.getLogger("prime_fabric")

# A real snapshot is ~100 KB; this one keeps each stream short.
EXAMPLE_SNAPSHOT = {
    "id": "c3ee5cb1-2d51-4e81-9318-1e718ea322c2",
    "timestamp": 1765014836687,
    "originalAudio": {"duration": 10.0, "sampleRate": 48000, "channels": 2},
    "quantumFeatures": {
        "spectral": [0.0001, 0.0055, 0.0222],
        "temporal": [0.505, 0.0137, 10.0],
        "harmonic": [576.0, 0.41],
        "percussive": [0.415, 0.57, 1.0, 0.39],
        "stereo": [0.992, 0.0007, -0.082],
        "energy": [0.494, 0.0016, 0.569, 0.405],
    },
    "musicalContext": {
        "key": "D",
        "mode": "major",
        "bpm": 116.73,
        "transients": [{"time": 0.0107, "strength": 0.415}],
        "harmonicContent": {"dominantFrequencies": [614.27, 848.32], "tensionLevel": 0.57},
    },
    "groundTruthStems": {"vocals": [0.143, -0.343, None], "bass": [0.3, 0.3, -0.3]},
    "userCorrections": [
        {
            "correctedStem": "harmonic",
            "correctionType": "masking",
            "frequencyRange": [1904.1, 14938.3],
            "timeRange": [4.8, 7.79],
            "strength": 0.13,
        }
    ],
    "metadata": {"classification": "full", "confidence": 0.52, "processingTime": 1787.5},
}
_body_schema = {
    "oneOf": [
        {"$ref": "#/components/schemas/StemSeparationSnapshot"},
        {"type": "array", "items": {"$ref": "#/components/schemas/StemSeparationSnapshot"}, "minItems": 1},
    ]
}
INGEST_OPENAPI = {
    "requestBody": {
        "required": True,
        "description": (
            "One snapshot, or a JSON array of them. Also accepted: `text/plain;charset=UTF-8` "
            "(what `navigator.sendBeacon` sends), NDJSON, and `Content-Encoding: gzip`."
        ),
        "content": {
            "application/json": {"schema": _body_schema, "example": EXAMPLE_SNAPSHOT},
            "text/plain": {"schema": {"type": "string"}},
        },
    },
}
INGEST_RESPONSES = {
    200: {"model": IngestResponse, "description": "Duplicate of a stored snapshot, or a batch all accepted"},
    201: {"model": IngestResponse, "description": "Stored"},
    207: {"model": IngestResponse, "description": "Batch with some snapshots rejected: see each result"},
    400: {"model": ErrorResponse, "description": "Malformed JSON, gzip or an empty body"},
    404: {"model": ErrorResponse, "description": "Unknown channel"},
    409: {"model": IngestResponse, "description": "Same id already stored with other content"},
    413: {"model": ErrorResponse, "description": "Body too large, or too many snapshots"},
    415: {"model": ErrorResponse, "description": f"Content-Type not one of {', '.join(ACCEPTED_TYPES)}"},
    422: {"model": IngestResponse, "description": "Snapshot fails validation: reasons per field"},
    429: {"model": ErrorResponse, "description": "Rate limit"},
    503: {"model": ErrorResponse, "description": "Database unavailable: retry"},
}


# Studio's snapshots (~100 KB) are decoded, validated and sanitised right on the event loop (a
# fraction of a millisecond): a worker thread would cost a hop and GIL contention with the writer.
# Larger or gzipped bodies (batches, up to 16 MiB inflated) go to a thread, so the loop is
# never held for long.
INLINE_PREPARE_MAX_BYTES = 256 * 1024


async def _ingest(request: Request, path_channel: str | None):
    # The database work goes to the process's ingest writer thread (writer.py). (FastAPI's
    # sync dependencies would each cost a thread hop, so the view uses none.)
    settings: Settings = request.app.state.settings
    header_channel = request.headers.get(CHANNEL_HEADER)
    context = RequestContext(
        channel=(path_channel or header_channel or "")[:64] or None,
        origin=_origin(request.headers.get("origin")),
        content_type=request.headers.get("content-type"),
        content_encoding=request.headers.get("content-encoding"),
    )
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
    except ClientDisconnect:
        # Nothing was accepted, so nothing is lost: Studio sends it again. One line, no traceback.
        log.warning("client %s went away after %d bytes of its body; nothing stored", client_address(request), len(body))
        _count(context, settings, "client_left")
        return Response(status_code=400)
    except BodyTooLarge as error:
        body += error.last_chunk
        detail = f"body is larger than {error.limit} bytes"
        qid = await _on_writer(
            settings, service.reject_request, context, bytes(body), 413, "body_too_large", detail, settings, error.received
        )
        _count(context, settings, "refused", "body_too_large")
        return _answer(413, ErrorResponse(detail=detail, quarantine_id=qid))

    problem = _channel_problem(path_channel, header_channel, settings.channels)
    if problem:
        status, reason_type, detail = problem
        qid = await _on_writer(settings, service.reject_request, context, bytes(body), status, reason_type, detail, settings)
        _count(context, settings, "refused", reason_type)
        return _answer(status, ErrorResponse(detail=detail, quarantine_id=qid))

    if len(body) <= INLINE_PREPARE_MAX_BYTES and not context.content_encoding:
        prepared = service.prepare_request(bytes(body), context, settings)
    else:
        prepared = await run_in_threadpool(service.prepare_request, bytes(body), context, settings)
    try:
        status, response = await _on_writer(settings, service.store_request, prepared, settings)
    except (*UNAVAILABLE_ERRORS, IngestBacklogFull):
        _count(context, settings, "unavailable")
        raise  # answered 503 by the app's handler
    if prepared.error is not None:
        _count(context, settings, "refused", prepared.error.reason_type)
    for result in getattr(response, "results", []):
        _count(context, settings, result.status, result.reasons[0].type if result.reasons else None)
    if isinstance(response, IngestResponse) and all(result.http_status == 200 for result in response.results):
        refund_rate_limit(request)  # only duplicates: Studio retrying what was stored
    return _answer(status, response)


def _count(context: RequestContext, settings: Settings, outcome: str, reason: str | None = None) -> None:
    count_ingest(context.channel, outcome, reason, settings.channels)


async def _on_writer(settings: Settings, function, *args):
    """function(connection, *args) on the process's ingest writer (writer.py); returns once
    what it wrote is committed."""
    writer = _writer(settings.ingest_batch_max, settings.ingest_database_wait_s, settings.ingest_max_waiting)
    return await writer.run(function, *args)


@cache
def _writer(max_batch: int, database_wait_s: float, max_waiting: int) -> IngestWriter:
    # One per process: its one thread does ingest's database work.
    return IngestWriter(max_batch, database_wait_s, max_waiting)


def _channel_problem(path_channel: str | None, header_channel: str | None, channels: list[str]):
    known = ", ".join(channels)
    if path_channel and header_channel and path_channel != header_channel:
        return 400, "channel_mismatch", f"{CHANNEL_HEADER} says {header_channel!r} but the URL says {path_channel!r}"
    channel = path_channel or header_channel
    if not channel:
        return 400, "missing_channel", f"name a channel in the URL or the {CHANNEL_HEADER} header: {known}"
    if channel not in channels:
        return 404, "unknown_channel", f"unknown channel {channel[:64]!r}; channels: {known}"
    return None


def _origin(value: str | None) -> str | None:
    """scheme://host[:port] of the Origin header; anything else is not kept."""
    if not value:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"[:255]


def _answer(status: int, model) -> Response:
    return Response(model.model_dump_json(by_alias=True, exclude_none=True), status_code=status, media_type="application/json")


@router.post(
    "/stem-separation",
    summary="Ingest stem-separation snapshots (Studio's export URL)",
    openapi_extra=INGEST_OPENAPI,
    responses=INGEST_RESPONSES,
    status_code=201,
)
async def ingest_stem_separation(request: Request):
    return await _ingest(request, "stem-separation")


@router.post(
    "/ingest/{channel}",
    summary="Ingest snapshots on a named channel",
    openapi_extra=INGEST_OPENAPI,
    responses=INGEST_RESPONSES,
    status_code=201,
)
async def ingest_on_channel(channel: str, request: Request):
    return await _ingest(request, channel)


@router.post(
    "/ingest",
    summary=f"Ingest snapshots on the channel named by {CHANNEL_HEADER}",
    openapi_extra=INGEST_OPENAPI,
    responses=INGEST_RESPONSES,
    status_code=201,
)
async def ingest_by_header(request: Request):
    return await _ingest(request, None)
