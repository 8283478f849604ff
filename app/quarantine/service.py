"""Keeping rejected input where an operator can read why, and listing it."""

import hashlib
import re
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from app.database import dialect_insert
from app.quarantine.models import QuarantinedItem
from app.snapshots.schemas import Reason
from training.contract import CORRECTION_TYPES, KEYS, MODES, STEMS


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
    fingerprint = hashlib.sha256(
        f"{context.channel}|{http_status}|{reasons[0].type}|{item_index}|".encode() + body
    ).hexdigest()
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


# What an operator may see of a rejected body: its structure, keys, numbers and the contract's
# own words; never free text, which could name a person, a place, a phone number or a track,
# in whatever field (known or not) it arrives. Works on the text, so malformed JSON is covered.
_KEPT_WORDS = frozenset((*STEMS, *KEYS, *MODES, *CORRECTION_TYPES, "stem-separation", "true", "false", "null", "NaN",
                         "Infinity"))  # fmt: skip
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")  # a field name such as quantumFeatures
_SLUG = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # a classification such as twotrack
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# A JSON string (to its closing quote or the end of the line); a run of numbers with the commas,
# spaces and brackets between them (kept as it is, and matched as one so that a body of a
# million numbers is a few thousand tokens; it starts at a digit, so matching stays linear); or
# a run of letters outside a string.
_TOKEN = re.compile(r'(?P<string>"(?:[^"\\\n]|\\.)*"?)|(?P<numbers>\d[-+.\d,\s\[\]]*(?:(?<=\d)[eE][-+.\d,\s\[\]]*)*)|[^\W\d_][\w.@+\'-]*')


def without_free_text(text: str) -> str:
    """Every string and bare word replaced by a marker with its length, `"<text:11>"`, unless it
    is a field name, a UUID, one of the contract's enumerations, or a classification slug (as
    the value of "classification"). Linear in the text's length."""
    pieces, done, last_key = [], 0, None
    for match in _TOKEN.finditer(text):
        token = match.group()
        pieces.append(text[done : match.start()])
        done = match.end()
        if match.lastgroup == "numbers":
            pieces.append(token)
        elif match.lastgroup == "string":
            inner = token[1:-1] if len(token) > 1 and token.endswith('"') else token[1:]
            is_key = text[done : done + 64].lstrip().startswith(":")
            if is_key and _IDENTIFIER.fullmatch(inner):
                pieces.append(token)
                last_key = inner
                continue
            if (inner in _KEPT_WORDS or _UUID.fullmatch(inner)) or (last_key == "classification" and _SLUG.fullmatch(inner)):
                pieces.append(token)
            else:
                pieces.append(f'"<text:{len(inner)}>"')
            if not is_key:
                last_key = None
        elif token in _KEPT_WORDS:
            pieces.append(token)
        else:
            pieces.append(f"<text:{len(token)}>")
    pieces.append(text[done:])
    return "".join(pieces)


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
