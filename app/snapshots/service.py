"""Ingesting snapshots: decode the request, validate and sanitise each snapshot, store it
exactly once, and quarantine whatever is rejected. Plain functions over a Session."""

from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.database import insert_for
from app.quarantine.service import RequestContext, quarantine
from app.snapshots import models
from app.snapshots.payload import PayloadError, decode_body, parse_snapshots, readable_prefix
from app.snapshots.sanitize import sanitise
from app.snapshots.schemas import ErrorResponse, IngestResponse, Reason, Snapshot, SnapshotResult

MAX_REASONS = 50


def ingest_request(
    session: Session, body: bytes, context: RequestContext, settings: Settings
) -> tuple[int, BaseModel]:
    """Answers one ingest request: (HTTP status, response model). Commits."""
    try:
        decoded = decode_body(
            body, context.content_type, context.content_encoding, max_decoded_bytes=settings.max_decoded_body_bytes
        )
        items = parse_snapshots(decoded, context.content_type, max_snapshots=settings.max_snapshots_per_request)
    except PayloadError as error:
        quarantine_id = reject_request(
            session, context, body, error.http_status, error.reason_type, error.detail, settings
        )
        return error.http_status, ErrorResponse(detail=error.detail, quarantine_id=quarantine_id)

    results = [ingest_snapshot(session, item, index, context, settings) for index, item in enumerate(items)]
    session.commit()
    response = IngestResponse(channel=context.channel or "", results=results)
    if len(results) == 1:
        return results[0].http_status, response
    all_accepted = all(r.http_status < 300 for r in results)
    return (200 if all_accepted else 207), response


def reject_request(
    session: Session,
    context: RequestContext,
    body: bytes,
    http_status: int,
    reason_type: str,
    detail: str,
    settings: Settings,
    body_size: int | None = None,
) -> int:
    """Quarantines a request refused as a whole (bad type, bad JSON, too large...). Commits."""
    quarantine_id = quarantine(
        session,
        context=context,
        http_status=http_status,
        reasons=[Reason(loc="body", type=reason_type, msg=detail)],
        body=readable_prefix(body, context.content_encoding, settings.quarantine_body_max_bytes),
        body_size=len(body) if body_size is None else body_size,
        max_bytes=settings.quarantine_body_max_bytes,
    )
    session.commit()
    return quarantine_id


def ingest_snapshot(
    session: Session, item: Any, index: int, context: RequestContext, settings: Settings
) -> SnapshotResult:
    """Validates, sanitises and stores one snapshot, once. Does not commit."""
    raw_id = item.get("id") if isinstance(item, dict) else None
    raw_id = raw_id if isinstance(raw_id, str) else None
    try:
        snapshot = Snapshot.model_validate(item)
    except ValidationError as error:
        reasons = [
            Reason(loc=".".join(str(part) for part in e["loc"]) or "snapshot", type=e["type"], msg=e["msg"])
            for e in error.errors(include_url=False, include_input=False)[:MAX_REASONS]
        ]
        return _reject_snapshot(session, item, index, raw_id, 422, "rejected", reasons, context, settings)

    clean = sanitise(snapshot, item)
    row = {**clean.row, "channel": context.channel, "origin": context.origin, "content_hash": clean.content_hash}
    statement = (
        insert_for(session, models.Snapshot)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(models.Snapshot.id)
    )
    snapshot_id = str(snapshot.id)
    if session.execute(statement).scalar_one_or_none() is not None:
        if clean.corrections:
            session.execute(
                insert(models.SnapshotCorrection),
                [{"snapshot_id": snapshot.id, **correction} for correction in clean.corrections],
            )
        return SnapshotResult(
            index=index, id=snapshot_id, status="stored", http_status=201, rules_fired=clean.rules_fired
        )

    # The id is taken: a retry of the same snapshot, or different content under its id.
    stored_hash = session.scalar(select(models.Snapshot.content_hash).where(models.Snapshot.id == snapshot.id))
    if stored_hash == clean.content_hash:
        session.execute(
            update(models.Snapshot)
            .where(models.Snapshot.id == snapshot.id)
            .values(duplicates_absorbed=models.Snapshot.duplicates_absorbed + 1)
        )
        return SnapshotResult(index=index, id=snapshot_id, status="duplicate", http_status=200)
    reason = Reason(
        loc="id",
        type="id_conflict",
        msg=f"snapshot {snapshot_id} is already stored with different content; this one is kept for review",
    )
    return _reject_snapshot(session, item, index, snapshot_id, 409, "conflict", [reason], context, settings)


def _reject_snapshot(
    session: Session,
    item: Any,
    index: int,
    snapshot_id: str | None,
    http_status: int,
    status: str,
    reasons: list[Reason],
    context: RequestContext,
    settings: Settings,
) -> SnapshotResult:
    try:
        body = orjson.dumps(item)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (254 levels)
        body = b"(not kept: nested too deep to serialise)"
    quarantine_id = quarantine(
        session,
        context=context,
        http_status=http_status,
        reasons=reasons,
        body=body,
        max_bytes=settings.quarantine_body_max_bytes,
        snapshot_id=snapshot_id,
        item_index=index,
    )
    return SnapshotResult(
        index=index,
        id=snapshot_id,
        status=status,
        http_status=http_status,
        reasons=reasons,
        quarantine_id=quarantine_id,
    )
