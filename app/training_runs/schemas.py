"""Runs and datasets on the wire: what an operator may ask, and what they read back."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from app.schema_base import CamelModel
from training.judgement import Judgement

DEFAULT_CANDIDATES = ["small", "mlp"]


class RunParameters(CamelModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"runLabel": "weekly", "epochs": 50, "candidates": ["small", "mlp"]}]},
    )

    run_label: str = Field(default="run", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    # Shares of the dataset held out for model selection and for the report and the gate.
    validation_share: float = Field(default=0.15, gt=0.0, lt=0.5)
    test_share: float = Field(default=0.15, gt=0.0, lt=0.5)
    epochs: int = Field(default=50, ge=1, le=1000)
    # Unset: each candidate's own (training/model.py CANDIDATES); set: this run's, for every candidate.
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    learning_rate: float | None = Field(default=None, gt=0.0, le=1.0)
    # The learned predictors this run trains; ridge is always fitted beside them, and the one with
    # the lowest validation error faces the gate. Transformer sizes: "full" is Studio's
    # architecture, "small" trains in minutes on a CPU, "tiny" in seconds (tests, demos); "mlp"
    # sees one step at a time. The default is what validation picked on real compositions
    # (bench/model_quality.py).
    candidates: list[Literal["full", "small", "tiny", "mlp"]] = Field(default=DEFAULT_CANDIDATES, min_length=1, max_length=4)
    # Weights' initialisation and the order of batches: the same seed, data and machine give the same model.
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    @model_validator(mode="before")
    @classmethod
    def _one_size(cls, data):
        """`modelSize` (one transformer size, as runs were asked for before candidates) is that
        one candidate: stored runs and operators' scripts keep working."""
        if isinstance(data, dict):
            size = data.get("modelSize", data.get("model_size"))
            if size is not None and "candidates" not in data:
                data = {k: v for k, v in data.items() if k not in ("modelSize", "model_size")} | {"candidates": [size]}
        return data

    @field_validator("candidates")
    @classmethod
    def _each_once(cls, candidates: list[str]) -> list[str]:
        if len(set(candidates)) != len(candidates):
            raise ValueError("each candidate at most once")
        return candidates


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
    metrics: Annotated[Judgement | None, BeforeValidator(Judgement.stored)] = Field(
        description="The run's judgement on its test split (training/judgement.py); null until it is evaluated, and for a "
        "run judged by an earlier feature version's metrics"
    )
    worker: str | None
    error: str | None
    dispatches: int = Field(description="How many times the run was sent to the workers (sent again when none started it)")
    created_at: datetime
    dispatched_at: datetime | None = None
    started_at: datetime | None
    finished_at: datetime | None
