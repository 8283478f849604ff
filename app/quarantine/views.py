"""Operators read what was rejected and why. Token required."""

from fastapi import APIRouter, Depends, HTTPException, Query

from app.auth.dependencies import require
from app.db.base import ROW_ID_MAX, RowId
from app.db.engine import session_scope
from app.quarantine import service
from app.quarantine.schemas import QuarantineView

router = APIRouter(tags=["quarantine"], dependencies=[Depends(require("operator"))])
PREVIEW_CHARS = 2000


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
        items = service.list_quarantined(
            reason_type=reason_type,
            http_status=http_status,
            channel=channel,
            limit=limit,
            before_id=before_id,
            db_session=session,
        )
        views = [QuarantineView.model_validate(item) for item in items]
    return [v.model_copy(update={"body_excerpt": v.body_excerpt[:PREVIEW_CHARS]}) for v in views]


@router.get("/quarantine/{item_id}", response_model=QuarantineView, summary="One rejection, with the kept body")
def get_item(item_id: RowId):
    with session_scope() as session:
        item = service.get(item_id, db_session=session)
        if item is None:
            raise HTTPException(404, f"no quarantined item {item_id}")
        return QuarantineView.model_validate(item)
