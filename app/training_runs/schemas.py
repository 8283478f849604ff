"""What an operator may ask of a run."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class RunParameters(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True,
                              json_schema_extra={"examples": [{"runLabel": "weekly", "epochs": 50, "modelSize": "full"}]})  # fmt: skip

    run_label: str = Field(default="run", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    train_ratio: float = Field(default=0.8, gt=0.0, lt=1.0)
    epochs: int = Field(default=50, ge=1, le=1000)
    batch_size: int = Field(default=32, ge=1, le=4096)
    learning_rate: float = Field(default=1e-3, gt=0.0, le=1.0)
    # "full" is Studio's architecture; "tiny" trains in seconds on a CPU (tests, demos).
    model_size: Literal["full", "tiny"] = "full"
