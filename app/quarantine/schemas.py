"""A rejection as operators read it."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from app.schema_base import CamelModel


class Reason(BaseModel):
    """Why (part of) a snapshot was rejected: where, what rule, in words."""

    loc: str
    type: str
    msg: str


class QuarantineView(CamelModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 17,
                    "firstSeenAt": "2026-11-21T06:00:00Z",
                    "lastSeenAt": "2026-11-21T06:00:08Z",
                    "occurrences": 5,
                    "channel": "stem-separation",
                    "origin": "https://studio.example",
                    "contentType": "application/json",
                    "contentEncoding": None,
                    "httpStatus": 422,
                    "reasonType": "literal_error",
                    "reasons": [{"loc": "musicalContext.key", "type": "literal_error", "msg": "Input should be 'C', 'C#', ..."}],
                    "snapshotId": "c3ee5cb1-2d51-4e81-9318-1e718ea322c2",
                    "itemIndex": 0,
                    "bodySize": 130134,
                    "bodyExcerpt": '{"id": "c3ee5cb1-...',
                    "bodyTruncated": False,
                }
            ]
        },
    )

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
