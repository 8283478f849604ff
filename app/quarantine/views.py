"""Operators read what was rejected and why. Token required."""

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from app.auth.dependencies import require
from app.database import ROW_ID_MAX, RowId, session_scope
from app.http import get_or_404
from app.quarantine.models import QuarantinedItem
from app.quarantine.service import list_quarantined

router = APIRouter(tags=["quarantine"], dependencies=[Depends(require("operator"))])
PREVIEW_CHARS = 2000


class QuarantineView(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True, json_schema_extra={
        "examples": [{"id": 17, "firstSeenAt": "2026-11-21T06:00:00Z", "lastSeenAt": "2026-11-21T06:00:08Z",
                      "occurrences": 5, "channel": "stem-separation", "origin": "https://studio.example",
                      "contentType": "application/json", "contentEncoding": None, "httpStatus": 422,
                      "reasonType": "literal_error",
                      "reasons": [{"loc": "musicalContext.key", "type": "literal_error", "msg": "Input should be 'C', 'C#', ..."}],
                      "snapshotId": "c3ee5cb1-2d51-4e81-9318-1e718ea322c2", "itemIndex": 0, "bodySize": 130134,
                      "bodyExcerpt": "{\"id\": \"c3ee5cb1-...", "bodyTruncated": False}]
    })  # fmt: skip

    id: int
    first_seen_at: datetime
    last_seen_at: datetime
    occurrences: int
    channel: str | None
    origin: str | None
    content_type: str | None
    content_encoding: str | None
    http_status: int
    reason_type: str
    reasons: list
    snapshot_id: str | None
    item_index: int | None
    body_size: int
    body_excerpt: str
    body_truncated: bool


@router.get("/quarantine", response_model=list[QuarantineView], summary="Rejections, newest first (paged)")
def list_items(
    reason_type: str | None = Query(None, alias="reasonType", max_length=64),
    http_status: int | None = Query(None, alias="httpStatus", ge=400, le=499),
    channel: str | None = Query(None, max_length=64),
    limit: int = Query(50, ge=1, le=500),
    before_id: int | None = Query(None, alias="beforeId", ge=1, le=ROW_ID_MAX, description="The last id of the previous page"),
):
    """Each item's body is cut to its first 2,000 characters here; GET one for all of it."""
    with session_scope() as session:
        items = list_quarantined(session, reason_type=reason_type, http_status=http_status, channel=channel,
                                 limit=limit, before_id=before_id)  # fmt: skip
        views = [QuarantineView.model_validate(item) for item in items]
    return [v.model_copy(update={"body_excerpt": v.body_excerpt[:PREVIEW_CHARS]}) for v in views]


@router.get("/quarantine/{item_id}", response_model=QuarantineView, summary="One rejection, with the kept body")
def get_item(item_id: RowId):
    with session_scope() as session:
        return QuarantineView.model_validate(get_or_404(session, QuarantinedItem, item_id, "quarantined item"))
