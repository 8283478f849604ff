"""Datasets on the wire: what an operator reads back."""

from datetime import datetime

from pydantic import ConfigDict

from app.schema_base import CamelModel


class DatasetView(CamelModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 4,
                    "contentHash": "9f2c...e1",
                    "runLabel": "weekly",
                    "createdAt": "2026-11-21T06:00:02Z",
                    "featureVersion": "fe-3",
                    "trainRatio": 0.7,
                    "trainCount": 1420,
                    "validationCount": 300,
                    "testCount": 295,
                    "manifest": {
                        "counts": {"train": 1620, "validation": 395, "total": 2015},
                        "audit": {"duplicate_content_skipped": 3},
                    },
                }
            ]
        },
    )

    id: int
    content_hash: str
    run_label: str
    created_at: datetime
    feature_version: str
    train_ratio: float
    train_count: int
    validation_count: int
    test_count: int
    manifest: dict
