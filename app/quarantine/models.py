from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Integer, SmallInteger, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class QuarantinedItem(Base):
    """A rejected request, or one rejected snapshot of a batch.

    The same rejected content sent again (Studio retries 4xx answers up to 5 times) bumps
    `occurrences` on one row instead of adding rows: `fingerprint` is unique.
    """

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    occurrences: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    channel: Mapped[str | None] = mapped_column(String(64), index=True)
    origin: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(128))
    content_encoding: Mapped[str | None] = mapped_column(String(32))
    http_status: Mapped[int] = mapped_column(SmallInteger, index=True)
    # The first reason's type, for filtering: malformed_json, validation, id_conflict, ...
    reason_type: Mapped[str] = mapped_column(String(64), index=True)
    reasons: Mapped[list] = mapped_column(JSON)
    snapshot_id: Mapped[str | None] = mapped_column(String(36), index=True)
    item_index: Mapped[int | None] = mapped_column(Integer)

    body_size: Mapped[int] = mapped_column(Integer)
    # What was received (decoded from gzip where possible), redacted, at most
    # `quarantine_body_max_bytes` of it; `body_truncated` says whether that cut it.
    body_excerpt: Mapped[str] = mapped_column(Text)
    body_truncated: Mapped[bool] = mapped_column(Boolean)
