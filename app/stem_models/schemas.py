"""What Studio and operators read about models."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class WeightFile(WireModel):
    path: str
    url: str
    size: int
    sha256: str
    integrity: str = Field(description="Subresource Integrity string for fetch(..., {integrity})")


class LatestManifest(WireModel):
    """Everything Studio needs to fetch, check and run the latest model."""

    channel: str
    version: str
    created_at: datetime
    model_json_url: str = Field(description="Pass to tf.loadGraphModel")
    float16_model_json_url: str
    files: list[WeightFile]
    stems: list[str] = Field(description="Order of the stems along the output's stem axis")
    input: dict
    output: dict
    feature_version: str
    metrics: dict = Field(description="Validation medians: sdr, sir, sar (dB) and Studio's score (mean)")


class ModelSummary(WireModel):
    id: int
    version: str
    created_at: datetime
    run_id: int
    decision: str
    reason: str
    is_latest: bool
    metrics: dict


class PromotionRecord(WireModel):
    model_id: int
    promoted_at: datetime
    promoted_by: str
    reason: str


class PromoteRequest(WireModel):
    reason: str = Field(default="promoted by an operator", max_length=1000)
