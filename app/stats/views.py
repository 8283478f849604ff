"""Statistics over HTTP, for admins (the dashboard renders the same figures)."""

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Query

from app.auth.dependencies import require
from app.db.engine import session_scope
from app.stats import service
from app.stats.schemas import Distributions, Overview, StatsWindow

router = APIRouter(prefix="/stats", tags=["stats"], dependencies=[Depends(require("admin"))])


def stats_window(
    range_name: service.RangeName = Query("all", alias="range", description="Ends now; `since` overrides it"),
    since: datetime | None = Query(None, description="Received at or after (UTC if no zone is given)"),
    until: datetime | None = Query(None, description="Received before"),
    channel: str | None = Query(None, max_length=64, description="One ingest channel; all when absent"),
) -> StatsWindow:
    try:
        return service.window_for(range_name, since, until, channel)
    except ValueError as error:
        raise HTTPException(422, f"since/until: {error}") from None


@router.get("/overview", response_model=Overview, summary="Snapshots received, rejected and absorbed, over time")
def overview(window: StatsWindow = Depends(stats_window)):
    with session_scope() as session:
        return service.overview(window, db_session=session)


@router.get("/data", response_model=Distributions, summary="How the stored snapshots are distributed")
def data(window: StatsWindow = Depends(stats_window)):
    with session_scope() as session:
        return service.distributions(window, db_session=session)
