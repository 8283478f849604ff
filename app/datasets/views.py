"""Operators read the datasets runs were trained on: manifests and audits. Token required."""

from fastapi import APIRouter, Depends, HTTPException, Query

from app.auth.dependencies import require
from app.datasets import service
from app.datasets.schemas import DatasetView
from app.db.base import RowId
from app.db.engine import session_scope

router = APIRouter(tags=["datasets"], dependencies=[Depends(require("operator"))])


@router.get("/datasets", response_model=list[DatasetView], summary="Built datasets with manifests and audits")
def list_datasets(limit: int = Query(50, ge=1, le=500)):
    with session_scope() as session:
        return [DatasetView.model_validate(row) for row in service.get_all(limit=limit, db_session=session)]


@router.get("/datasets/{dataset_id}", response_model=DatasetView, summary="One dataset")
def get_dataset(dataset_id: RowId):
    with session_scope() as session:
        dataset = service.get(dataset_id, db_session=session)
        if dataset is None:
            raise HTTPException(404, f"no dataset {dataset_id}")
        return DatasetView.model_validate(dataset)
