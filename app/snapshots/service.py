"""Ingesting snapshots, in two steps:

- `prepare_request`: decode the body, validate and sanitise each snapshot. Pure CPU work,
  no database, so the API can run it without a thread hop.
- `store_request`: store each accepted snapshot exactly once, absorb retries, and quarantine
  whatever was rejected, on a SQLAlchemy Core connection: the ingest writer's, in autocommit
  or in a transaction shared with other requests (writer.py). Each snapshot is atomic either
  way; a request as a whole need not be, since its retry is absorbed.
"""

import functools
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Dialect, insert, select, update

from app.config import Settings
from app.db.writes import DriverInsert, atomic, dialect_insert
from app.quarantine.schemas import Reason
from app.quarantine.service import RequestContext, quarantine
from app.snapshots import models
from app.snapshots.payload import PayloadError, decode_body, parse_snapshots, readable_prefix
from app.snapshots.sanitize import SanitisedSnapshot, sanitise
from app.snapshots.schemas import ErrorResponse, IngestResponse, Snapshot, SnapshotResult

MAX_REASONS = 50


@dataclass(frozen=True)
class Accepted:
    index: int
    snapshot_id: uuid.UUID
    clean: SanitisedSnapshot
    raw: Any  # the JSON as sent, kept in case its id turns out to be taken

    def as_record(self) -> dict:
        """What `fabric sanitize` reports of it: the columns it would store (not the arrays)."""
        stored = {k: v for k, v in self.clean.row.items() if not isinstance(v, bytes | None)}
        return {"id": str(self.snapshot_id), "status": "accepted", "rulesFired": self.clean.rules_fired, "stored": stored}


@dataclass(frozen=True)
class Rejected:
    index: int
    snapshot_id: str | None
    reasons: list[Reason]
    raw: Any

    def as_record(self) -> dict:
        return {"id": self.snapshot_id, "status": "rejected", "reasons": [r.model_dump() for r in self.reasons]}


@dataclass(frozen=True)
class PreparedRequest:
    context: RequestContext
    body: bytes
    items: list[Accepted | Rejected]
    error: PayloadError | None = None  # the request as a whole could not be read


def prepare_request(body: bytes, context: RequestContext, settings: Settings) -> PreparedRequest:
    """Decodes, validates and sanitises every snapshot in a request. No I/O."""
    try:
        decoded = decode_body(
            body,
            context.content_type,
            context.content_encoding,
            max_decoded_bytes=settings.max_decoded_body_bytes,
            max_values=settings.max_values_per_request,
        )
        items = parse_snapshots(decoded, context.content_type, max_snapshots=settings.max_snapshots_per_request)
    except PayloadError as error:
        return PreparedRequest(context, body, [], error)
    return PreparedRequest(context, body, [prepare_snapshot(item, index) for index, item in enumerate(items)])


def prepare_snapshot(item: Any, index: int) -> Accepted | Rejected:
    try:
        snapshot = Snapshot.model_validate(item)
    except ValidationError as error:
        raw_id = item.get("id") if isinstance(item, dict) else None
        reasons = [
            Reason(loc=".".join(str(part) for part in e["loc"]) or "snapshot", type=e["type"], msg=e["msg"])
            for e in error.errors(include_url=False, include_input=False)[:MAX_REASONS]
        ]
        return Rejected(index, raw_id if isinstance(raw_id, str) else None, reasons, item)
    return Accepted(index, snapshot.id, sanitise(snapshot, item), item)


def store_request(connection: Connection, prepared: PreparedRequest, settings: Settings) -> tuple[int, BaseModel]:
    """Stores a prepared request; returns (HTTP status, response model)."""
    context = prepared.context
    if prepared.error is not None:
        error = prepared.error
        quarantine_id = reject_request(
            connection, context, prepared.body, error.http_status, error.reason_type, error.detail, settings
        )
        return error.http_status, ErrorResponse(detail=error.detail, quarantine_id=quarantine_id)

    results = [_store_item(connection, item, context, settings) for item in prepared.items]
    response = IngestResponse(channel=context.channel or "", results=results)
    if len(results) == 1:
        return results[0].http_status, response
    all_accepted = all(r.http_status < 300 for r in results)
    return (200 if all_accepted else 207), response


def reject_request(
    connection: Connection,
    context: RequestContext,
    body: bytes,
    http_status: int,
    reason_type: str,
    detail: str,
    settings: Settings,
    body_size: int | None = None,
) -> int:
    """Quarantines a request refused as a whole (bad type, bad JSON, too large...). `body_size`,
    when given, is the size the request declared or reached: more than `body` when it was cut off."""
    return quarantine(
        connection,
        context=context,
        http_status=http_status,
        reasons=[Reason(loc="body", type=reason_type, msg=detail)],
        body=readable_prefix(body, context.content_encoding, settings.quarantine_body_max_bytes),
        body_size=len(body) if body_size is None else body_size,
        max_bytes=settings.quarantine_body_max_bytes,
        received_whole=body_size is None or body_size <= len(body),
    )


def _store_item(connection: Connection, item: Accepted | Rejected, context: RequestContext, settings: Settings) -> SnapshotResult:
    if isinstance(item, Rejected):
        return _quarantine_item(connection, item, 422, "rejected", context, settings)

    clean = item.clean
    row, correction_rows = stored_rows(clean, item.snapshot_id, context)
    snapshot_id = str(item.snapshot_id)
    snapshot_insert, correction_insert = _inserts(connection.dialect)
    # A snapshot is stored with its corrections or not at all; alone, its INSERT is atomic.
    with atomic(connection) if correction_rows else nullcontext():
        stored = bool(snapshot_insert.execute(connection, [row]))  # a row back: it is new
        if stored and correction_rows:
            correction_insert.execute(connection, correction_rows)
    if stored:
        return SnapshotResult(index=item.index, id=snapshot_id, status="stored", http_status=201, rules_fired=clean.rules_fired)

    # The id is taken: a retry of the same snapshot, or different content under its id.
    table = models.Snapshot.__table__
    stored_hash = connection.scalar(select(table.c.content_hash).where(table.c.id == item.snapshot_id))
    if stored_hash == clean.content_hash:
        connection.execute(
            update(table).where(table.c.id == item.snapshot_id).values(duplicates_absorbed=table.c.duplicates_absorbed + 1)
        )
        return SnapshotResult(index=item.index, id=snapshot_id, status="duplicate", http_status=200)
    reason = Reason(
        loc="id",
        type="id_conflict",
        msg=f"snapshot {snapshot_id} is already stored with different content; this one is kept for review",
    )
    conflict = Rejected(item.index, snapshot_id, [reason], item.raw)
    return _quarantine_item(connection, conflict, 409, "conflict", context, settings)


def stored_rows(
    clean: SanitisedSnapshot, snapshot_id: uuid.UUID, context: RequestContext
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The snapshot's row and its corrections' rows, as they are stored."""
    row = {
        **clean.row,
        "id": snapshot_id,
        "channel": context.channel,
        "origin": context.origin,
        "content_hash": clean.content_hash,
    }
    return row, [{"snapshot_id": snapshot_id, **correction} for correction in clean.corrections]


@functools.lru_cache(maxsize=8)  # one per engine's dialect
def _inserts(dialect: Dialect) -> tuple[DriverInsert, DriverInsert]:
    """The two inserts of a new snapshot, compiled once (see DriverInsert): the snapshot row,
    INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id (a row back means it is new), and
    its corrections. Every row has every column but the server-set received_at and the
    defaulted duplicates_absorbed (sanitise builds them so)."""
    snapshots = models.Snapshot.__table__
    snapshot_insert = (
        dialect_insert(dialect.name, snapshots).on_conflict_do_nothing(index_elements=["id"]).returning(snapshots.c.id)
    )
    corrections = models.SnapshotCorrection.__table__
    return (
        DriverInsert(snapshot_insert, dialect, _keys(snapshots, omit=frozenset({"received_at", "duplicates_absorbed"}))),
        DriverInsert(insert(corrections), dialect, _keys(corrections)),
    )


def _keys(table, omit: frozenset[str] = frozenset()) -> list[str]:
    return [column.key for column in table.columns if column.key not in omit]


def _quarantine_item(
    connection: Connection,
    item: Rejected,
    http_status: int,
    status: str,
    context: RequestContext,
    settings: Settings,
) -> SnapshotResult:
    try:
        body = orjson.dumps(item.raw, option=orjson.OPT_SERIALIZE_NUMPY)  # float arrays: see payload.py
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (254 levels)
        body = b"(not kept: nested too deep to serialise)"
    quarantine_id = quarantine(
        connection,
        context=context,
        http_status=http_status,
        reasons=item.reasons,
        body=body,
        max_bytes=settings.quarantine_body_max_bytes,
        snapshot_id=item.snapshot_id,
        item_index=item.index,
    )
    return SnapshotResult(
        index=item.index,
        id=item.snapshot_id,
        status=status,
        http_status=http_status,
        reasons=item.reasons,
        quarantine_id=quarantine_id,
    )
