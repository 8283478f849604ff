"""Runs and datasets on the wire: what an operator may ask, and what they read back."""

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from app.wire import CamelModel


class RunParameters(CamelModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"runLabel": "weekly", "epochs": 50, "modelSize": "full"}]}
    )

    run_label: str = Field(default="run", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    # Shares of the dataset held out for model selection and for the report and the gate.
    validation_share: float = Field(default=0.15, gt=0.0, lt=0.5)
    test_share: float = Field(default=0.15, gt=0.0, lt=0.5)
    epochs: int = Field(default=50, ge=1, le=1000)
    # Unset: the model size's own (training/model.py SIZES); set: this run's, recorded as given.
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    learning_rate: float | None = Field(default=None, gt=0.0, le=1.0)
    # "full" is Studio's architecture; "small" trains in minutes on a CPU; "tiny" in seconds (tests, demos).
    model_size: Literal["full", "small", "tiny"] = "full"
    # Weights' initialisation and the order of batches: the same seed, data and machine give the same model.
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class RunStarted(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": 12, "url": "https://fabric.example/runs/12", "status": "queued"}]}
    )

    id: int
    url: str
    status: str


class RunView(CamelModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 12,
                    "label": "weekly",
                    "status": "running",
                    "stage": "training",
                    "parameters": {"run_label": "weekly", "epochs": 50},
                    "datasetId": 4,
                    "epoch": 3,
                    "history": [{"epoch": 2, "loss": 0.0049, "val_loss": 0.0067, "learning_rate": 0.001}],
                    "resumedFromEpoch": None,
                    "metrics": None,
                    "worker": "cpu@worker-1",
                    "error": None,
                    "dispatches": 1,
                    "dispatchedAt": "2026-11-21T06:00:00Z",
                    "createdAt": "2026-11-21T06:00:00Z",
                    "startedAt": "2026-11-21T06:00:01Z",
                    "finishedAt": None,
                }
            ]
        },
    )

    id: int
    label: str
    status: str
    stage: str
    parameters: dict
    dataset_id: int | None
    epoch: int | None
    history: list
    resumed_from_epoch: int | None
    metrics: dict | None
    worker: str | None
    error: str | None
    dispatches: int = Field(description="How many times the run was sent to the workers (sent again when none started it)")
    created_at: datetime
    dispatched_at: datetime | None = None
    started_at: datetime | None
    finished_at: datetime | None
