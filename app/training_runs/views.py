"""Operators start, follow and cancel training runs, and read datasets. Token required."""

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from sqlalchemy import select

from app.auth.dependencies import require
from app.database import ROW_ID_MAX, RowId, session_scope
from app.http import get_or_404
from app.datasets.models import Dataset
from app.training_runs.models import ACTIVE_STATUSES, TrainingRun
from app.training_runs.schemas import DatasetView, RunParameters, RunStarted, RunView
from app.broker import BrokerUnavailable
from app.training_runs import flows

router = APIRouter(tags=["training runs"], dependencies=[Depends(require("operator"))])


@router.post("/runs", status_code=202, response_model=RunStarted, summary="Start a training run",
             responses={409: {"description": "A run is already queued or running"},
                        503: {"description": "The task broker is unavailable: the run was not started"}})  # fmt: skip
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
        query = select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)
        if before_id:
            query = query.where(TrainingRun.id < before_id)
        return [RunView.model_validate(run) for run in session.scalars(query)]


@router.get("/runs/{run_id}", response_model=RunView, name="get_run", summary="A run: status, progress, metrics")
def get_run(run_id: RowId):
    with session_scope() as session:
        return RunView.model_validate(get_or_404(session, TrainingRun, run_id, "run"))


@router.post("/runs/{run_id}/cancel", status_code=202, response_model=RunStarted, summary="Cancel a queued or running run")
def cancel_run(run_id: RowId, request: Request):
    """The worker checks at every stage and after every epoch, and stops there."""
    with session_scope() as session:
        run = get_or_404(session, TrainingRun, run_id, "run")
        if run.status not in ACTIVE_STATUSES:
            raise HTTPException(409, f"run {run_id} is already {run.status}")
        run.status = "cancelled"
    return {"id": run_id, "url": str(request.url_for("get_run", run_id=run_id)), "status": "cancelled"}


@router.get("/datasets", response_model=list[DatasetView], summary="Built datasets with manifests and audits")
def list_datasets(limit: int = Query(50, ge=1, le=500)):
    with session_scope() as session:
        rows = session.scalars(select(Dataset).order_by(Dataset.id.desc()).limit(limit))
        return [DatasetView.model_validate(row) for row in rows]


@router.get("/datasets/{dataset_id}", response_model=DatasetView, summary="One dataset")
def get_dataset(dataset_id: RowId):
    with session_scope() as session:
        return DatasetView.model_validate(get_or_404(session, Dataset, dataset_id, "dataset"))
