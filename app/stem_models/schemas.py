"""What Studio and operators read about models."""

from datetime import datetime

from pydantic import ConfigDict, Field

from app.schema_base import CamelModel
from training.judgement import Judgement

EXAMPLE_METRICS = {
    "predictor": "small",
    "kind": "transformer",
    "levelErrorDb": 8.9,
    "presenceAuc": 0.74,
    "falseActivity": 0.31,
    "baseline": "ridge",
    "baselineErrorDb": 9.6,
    "marginDb": -0.7,
    "marginLowDb": -0.9,
    "marginHighDb": -0.5,
    "testSnapshots": 48,
}


class Headline(CamelModel):
    """A model's deciding figures on its test split (all None for a model judged by an earlier
    feature version's metrics)."""

    predictor: str | None = Field(
        None,
        description="Which candidate this model is (tiny, small, full, mlp or ridge); none for a model trained before candidates",
    )
    kind: str | None = Field(None, description="transformer, mlp or ridge")
    level_error_db: float | None = Field(None, description="Mean absolute level error, dB (lower is better)")
    presence_auc: float | None = None
    false_activity: float | None = None
    baseline: str | None = Field(None, description="The strongest baseline on the same data")
    baseline_error_db: float | None = None
    margin_db: float | None = Field(None, description="Model minus baseline error, dB; the gate wants its interval below 0")
    margin_low_db: float | None = None
    margin_high_db: float | None = None
    test_snapshots: int | None = None
    corrections_met: float | None = Field(
        None, description="Share of the test cells users' corrections bound where the model's level obeys the bound"
    )
    corrections_only_snapshots: int | None = Field(None, description="Training snapshots whose only label was users' corrections")
    sir_oracle_share: float | None = Field(
        None, description="Share of the oracle gains' SIR improvement the model's gains recover"
    )
    sdr_ceiling_share: float | None = Field(
        None, description="Share of the best level-only gains' SDR (MDX) improvement over filters the model's gains recover"
    )

    @classmethod
    def of(cls, judgement: Judgement | None) -> "Headline":
        """The deciding figures of a judgement (all None when there is none comparable)."""
        if judgement is None:
            return cls()
        model, margin, audio = judgement.model, judgement.margin, judgement.audio
        return cls(
            predictor=judgement.predictor.name if judgement.predictor else None,
            kind=judgement.predictor.kind if judgement.predictor else None,
            level_error_db=model.level_error_db,
            presence_auc=model.presence_auc,
            false_activity=model.false_activity,
            baseline=margin.reference,
            baseline_error_db=judgement.reference.level_error_db,
            margin_db=margin.difference_db,
            margin_low_db=margin.low_db,
            margin_high_db=margin.high_db,
            test_snapshots=model.snapshots,
            corrections_met=model.corrections_met,
            corrections_only_snapshots=judgement.corrections.corrections_only_snapshots,
            sir_oracle_share=audio.headline.sir_oracle_share if audio else None,
            sdr_ceiling_share=audio.headline.sdr_ceiling_share if audio else None,
        )


class StudioKitRef(CamelModel):
    url: str = Field(description="The Studio kit's ES module")
    integrity: str = Field(description="Its Subresource Integrity string, to pin it")


class WeightFile(CamelModel):
    path: str
    url: str
    size: int
    sha256: str
    integrity: str = Field(description="Subresource Integrity string for fetch(..., {integrity})")


class LatestManifest(CamelModel):
    """Everything Studio needs to fetch, check and run the latest model."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "channel": "stem-separation",
                    "version": "r12-9f2c41e1",
                    "createdAt": "2026-11-21T06:10:00Z",
                    "modelJsonUrl": "https://fabric.example/models/r12-9f2c41e1/files/float32/model.json",
                    "float16ModelJsonUrl": "https://fabric.example/models/r12-9f2c41e1/files/float16/model.json",
                    "files": [
                        {
                            "path": "float32/model.json",
                            "url": "https://fabric.example/models/r12-9f2c41e1/files/float32/model.json",
                            "size": 61234,
                            "sha256": "5d41...",
                            "integrity": "sha256-XUFAKrxLKna5cZ2REBfFkg==",
                        }
                    ],
                    "stems": ["vocals", "drums", "bass", "harmonic", "perc", "sub"],
                    "appliedStems": ["vocals", "drums", "harmonic"],
                    "input": {
                        "name": "stem_features:0",
                        "shape": [None, 150, 84],
                        "dtype": "float32",
                        "feature_version": "fe-3",
                        "step_seconds": 2.0,
                    },
                    "output": {"name": "Identity:0", "shape": [None, 6, 150], "stem_axis": 1, "unit": "dB relative to the mix"},
                    "featureVersion": "fe-3",
                    "metrics": EXAMPLE_METRICS,
                    "studioKit": {"url": "https://fabric.example/studio/prime-fabric.js", "integrity": "sha384-..."},
                }
            ]
        }
    )

    channel: str
    version: str
    created_at: datetime
    model_json_url: str = Field(description="Pass to tf.loadGraphModel")
    float16_model_json_url: str
    files: list[WeightFile]
    stems: list[str] = Field(description="Order of the stems along the output's stem axis")
    applied_stems: list[str] = Field(
        description="The stems whose gains Studio applies (those that helped on validation audio; all when the model "
        "was not judged on audio); applyGains leaves the others untouched"
    )
    input: dict
    output: dict
    feature_version: str
    metrics: Headline = Field(
        description="Test-split figures: level error (dB), presence AUC, the strongest baseline and the margin"
    )
    studio_kit: StudioKitRef = Field(description="The kit that encodes snapshots for this model, pinned by hash")


class ModelSummary(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "version": "r12-9f2c41e1",
                    "createdAt": "2026-11-21T06:10:00Z",
                    "runId": 12,
                    "decision": "published",
                    "reason": "beats the strongest baseline (ridge): ...; no champion yet",
                    "isLatest": True,
                    "metrics": EXAMPLE_METRICS,
                }
            ]
        }
    )

    id: int
    version: str
    created_at: datetime
    run_id: int
    decision: str
    reason: str
    is_latest: bool
    metrics: Headline


class PromotionRecord(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "modelId": 3,
                    "promotedAt": "2026-11-21T06:20:00Z",
                    "promotedBy": "token:2:alice",
                    "reason": "rollback from model 4",
                }
            ]
        }
    )

    id: int
    model_id: int
    promoted_at: datetime
    promoted_by: str
    reason: str
    forced: bool = Field(description="The gate had rejected this model; an operator forced it")


class PromoteRequest(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"reason": "better on last week's data"}, {"force": True, "reason": "A/B test in one region"}]
        }
    )

    reason: str = Field(default="promoted by an operator", max_length=1000)
    force: bool = Field(default=False, description="Needed (with a reason of your own) to promote a model the gate rejected")
