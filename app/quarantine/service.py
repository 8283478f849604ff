"""Keeping rejected input where an operator can read why, and listing it."""

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from app.db.writes import dialect_insert
from app.privacy import without_free_text
from app.quarantine.models import QuarantinedItem
from app.quarantine.schemas import Reason


@dataclass(frozen=True)
class RequestContext:
    """What is known of the request a rejected item came in."""

    channel: str | None
    origin: str | None
    content_type: str | None
    content_encoding: str | None


def quarantine(
    connection: Connection,
    *,
    context: RequestContext,
    http_status: int,
    reasons: list[Reason],
    body: bytes,
    body_size: int | None = None,
    max_bytes: int,
    snapshot_id: str | None = None,
    item_index: int | None = None,
    received_whole: bool = True,
) -> int:
    """Stores (or counts again) one rejected item and returns its quarantine id. `body` is what
    was received (or a prefix of it); received_whole=False when the request was cut off before
    its end (too large), so the excerpt is marked truncated however short it is."""
    excerpt = body[:max_bytes]
    fingerprint = hashlib.sha256(f"{context.channel}|{http_status}|{reasons[0].type}|{item_index}|".encode() + body).hexdigest()
    values = {
        "fingerprint": fingerprint,
        "channel": context.channel,
        "origin": context.origin,
        "content_type": (context.content_type or "")[:128] or None,
        "content_encoding": (context.content_encoding or "")[:32] or None,
        "http_status": http_status,
        "reason_type": reasons[0].type[:64],
        "reasons": [r.model_dump() for r in reasons[:50]],
        "snapshot_id": _as_uuid_text(snapshot_id),
        "item_index": item_index,
        "body_size": len(body) if body_size is None else body_size,
        # Invalid UTF-8 becomes U+FFFD; NUL is dropped because Postgres text cannot hold it.
        "body_excerpt": without_free_text(excerpt.decode("utf-8", "replace").replace("\x00", "")),
        "body_truncated": len(body) > max_bytes or not received_whole,
    }
    statement = dialect_insert(connection.dialect.name, QuarantinedItem.__table__).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["fingerprint"],
        set_={"occurrences": QuarantinedItem.occurrences + 1, "last_seen_at": func.now()},
    ).returning(QuarantinedItem.id)
    return connection.execute(statement).scalar_one()


def count(*, db_session: Session) -> tuple[int, int]:
    """(rows, rejected requests counted on them: a repeated rejection is one row, counted again)."""
    rows, occurrences = db_session.execute(select(func.count(), func.coalesce(func.sum(QuarantinedItem.occurrences), 0))).one()
    return rows, occurrences


def get(item_id: int, *, db_session: Session) -> QuarantinedItem | None:
    return db_session.get(QuarantinedItem, item_id)


def list_quarantined(
    *,
    db_session: Session,
    reason_type: str | None = None,
    http_status: int | None = None,
    channel: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[QuarantinedItem]:
    """Newest first; page on with `before_id` (the last id of the previous page)."""
    query = select(QuarantinedItem).order_by(QuarantinedItem.id.desc()).limit(limit)
    if reason_type:
        query = query.where(QuarantinedItem.reason_type == reason_type)
    if http_status:
        query = query.where(QuarantinedItem.http_status == http_status)
    if channel:
        query = query.where(QuarantinedItem.channel == channel)
    if before_id:
        query = query.where(QuarantinedItem.id < before_id)
    return list(db_session.scalars(query))


def _as_uuid_text(value: object) -> str | None:
    try:
        return str(uuid.UUID(str(value))) if value is not None else None
    except ValueError:
        return None
