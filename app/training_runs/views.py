"""Operators start, follow and cancel training runs. Token required."""

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from app.auth.dependencies import require
from app.broker import BrokerUnavailable
from app.db.base import ROW_ID_MAX, RowId
from app.db.engine import session_scope
from app.training_runs import flows, service
from app.training_runs.schemas import RunParameters, RunStarted, RunView

router = APIRouter(tags=["training runs"], dependencies=[Depends(require("operator"))])


@router.post(
    "/runs",
    status_code=202,
    response_model=RunStarted,
    summary="Start a training run",
    responses={
        409: {"description": "A run is already queued or running"},
        503: {"description": "The task broker is unavailable: the run was not started"},
    },
)
def start_run(parameters: RunParameters, request: Request, response: Response):
    """One run at a time: a request while another is queued or running is refused (409, with
    that run's id) rather than queued behind it, so two runs never race to become champion."""
    with session_scope() as session:
        try:
            run_id = flows.start_run(parameters, db_session=session).id
        except flows.RunInProgress as busy:
            raise HTTPException(409, str(busy)) from None
        except BrokerUnavailable as error:
            raise HTTPException(503, f"{error}; the run was not started", headers={"Retry-After": "10"}) from None
    url = str(request.url_for("get_run", run_id=run_id))
    response.headers["Location"] = url
    return {"id": run_id, "url": url, "status": "queued"}


@router.get("/runs", response_model=list[RunView], summary="Runs, newest first")
def list_runs(limit: int = Query(50, ge=1, le=500), before_id: int | None = Query(None, alias="beforeId", ge=1, le=ROW_ID_MAX)):
    with session_scope() as session:
        return [RunView.model_validate(run) for run in service.get_all(limit=limit, before_id=before_id, db_session=session)]


@router.get("/runs/{run_id}", response_model=RunView, name="get_run", summary="A run: status, progress, metrics")
def get_run(run_id: RowId):
    with session_scope() as session:
        run = service.get(run_id, db_session=session)
        if run is None:
            raise HTTPException(404, f"no run {run_id}")
        return RunView.model_validate(run)


@router.post("/runs/{run_id}/cancel", status_code=202, response_model=RunStarted, summary="Cancel a queued or running run")
def cancel_run(run_id: RowId, request: Request):
    """The worker checks at every stage and after every epoch, and stops there."""
    with session_scope() as session:
        try:
            if service.cancel(run_id, db_session=session) is None:
                raise HTTPException(404, f"no run {run_id}")
        except service.RunNotActive as ended:
            raise HTTPException(409, str(ended)) from None
    return {"id": run_id, "url": str(request.url_for("get_run", run_id=run_id)), "status": "cancelled"}
