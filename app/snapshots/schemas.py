"""The snapshot exactly as Studio sends it (camelCase JSON), and the ingest answers.

Limits come from docs/contract.md: feature streams are downsampled by Studio to at most
1000 values and ground-truth stems to at most 500, so anything longer is not from Studio (it
could be raw audio) and is rejected, never truncated. `null` stands where Studio had NaN/inf.
"""

from typing import Annotated, Any, Literal
from uuid import UUID

import numpy as np
from pydantic import ConfigDict, Field, ValidatorFunctionWrapHandler, WrapValidator, model_validator
from typing_extensions import TypedDict

from app.quarantine.schemas import Reason
from app.schema_base import CamelModel
from app.snapshots import arrays
from training.contract import CORRECTION_TYPES, KEYS, MAX_STEM_VALUES, MAX_STREAM_VALUES, MODES, STEMS

# The header that names the channel a snapshot is sent on (or the URL path does).
CHANNEL_HEADER = "X-Prime-Fabric-Channel"

# Studio sends every rise of a sample above 0.35 as a transient, uncapped: real-instrument mixes
# give 50-600 a second by loudness, clipped ones over 2,000 (tests/fixtures/studio_reference).
# 360,000 holds ten minutes at 600 a second; their JSON (~14.5 MiB) fits the body limit, within the
# memory bound every request already has (16 MiB decoded, FABRIC_MAX_VALUES_PER_REQUEST values).
# Only the count and the mean strength are stored.
MAX_TRANSIENTS = 360_000
MAX_DOMINANT_FREQUENCIES = 10
MAX_CORRECTIONS = 256
MAX_SAMPLE_RATE = 384_000
MAX_FREQUENCY_HZ = MAX_SAMPLE_RATE / 2
MAX_DURATION_S = 4 * 3600.0
# Client clock, ms since epoch: 2001-09-09 .. 2100-01-01.
MIN_TIMESTAMP_MS = 1_000_000_000_000
MAX_TIMESTAMP_MS = 4_102_444_800_000
# Studio's detectBPM: 60 x the mean rate of samples above 0.6 on a 512-sample grid, rounded; from
# 0 (two such samples minutes apart) to 60 x sampleRate / 512 (every grid point).
MAX_BPM = 60 * MAX_SAMPLE_RATE / 512

# Studio's vocabulary (training/contract.py) as types: Literal takes the tuples as they are.
StemName = Literal[STEMS]
KeyName = Literal[KEYS]
ModeName = Literal[MODES]
CorrectionType = Literal[CORRECTION_TYPES]

# Arrays are stored as float32: a value beyond its range would silently become inf.
FLOAT32_MAX = 3.4028234663852886e38
ArrayValue = Annotated[float, Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX, allow_inf_nan=False)]
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0.0, le=MAX_DURATION_S, allow_inf_nan=False)]
Frequency = Annotated[float, Field(ge=0.0, le=MAX_FREQUENCY_HZ, allow_inf_nan=False)]


def float32_array(max_length: int, **field: Any) -> Any:
    """A JSON array of numbers (or null, Studio's NaN) that validates into a float32 array.

    On the wire it is `list[number | null]` with `maxItems`, and that is its JSON Schema. It
    also takes the float64 arrays that payload.py's parser reads straight from the JSON text
    (numbers only, no Python float per value): those are range-checked at once, and only if
    one fails does it go through the list validator, which says exactly which value and why.
    """

    def to_float32(value: Any, handler: ValidatorFunctionWrapHandler) -> np.ndarray:
        if isinstance(value, np.ndarray):
            if value.ndim == 1 and value.size <= max_length and bool((np.abs(value) <= FLOAT32_MAX).all()):
                return value.astype(arrays.STORED_DTYPE)
            value = value.tolist()
        return arrays.to_float32(handler(value))

    return Annotated[list[ArrayValue | None], Field(max_length=max_length, **field), WrapValidator(to_float32)]


FeatureStream = float32_array(MAX_STREAM_VALUES)
GroundTruthStem = float32_array(MAX_STEM_VALUES)
# Studio sends exactly [mean, variance, max, min], or [] for very short audio.
EnergyValues = float32_array(4, json_schema_extra={"not": {"minItems": 1, "maxItems": 3}})


class WireModel(CamelModel):
    # strict: JSON `true` or "1.0" is not a number. Unknown fields are dropped (and recorded
    # by the sanitiser), so a newer Studio that adds a field is not locked out.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class OriginalAudio(WireModel):
    duration: Annotated[float, Field(gt=0.0, le=MAX_DURATION_S, allow_inf_nan=False)]
    sample_rate: Annotated[int, Field(ge=8000, le=MAX_SAMPLE_RATE)]
    channels: Annotated[int, Field(ge=1, le=32)]


class QuantumFeatures(WireModel):
    spectral: FeatureStream
    temporal: FeatureStream
    harmonic: FeatureStream
    percussive: FeatureStream
    stereo: FeatureStream
    energy: EnergyValues

    @model_validator(mode="after")
    def energy_is_four_or_none(self) -> "QuantumFeatures":
        if len(self.energy) not in (0, 4):
            raise ValueError("energy must hold exactly 4 values [mean, variance, max, min] or none")
        return self


class Transient(TypedDict):
    # A TypedDict, not a model: ~200 arrive per snapshot and only their count and mean strength
    # are kept, so validating them into plain dicts (a third of a model's cost) is enough.
    __pydantic_config__ = WireModel.model_config  # type: ignore[misc]

    time: Seconds
    strength: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class HarmonicContent(WireModel):
    dominant_frequencies: Annotated[list[Frequency], Field(max_length=MAX_DOMINANT_FREQUENCIES)]
    tension_level: Unit


class MusicalContext(WireModel):
    key: KeyName
    mode: ModeName | None = None
    bpm: Annotated[float, Field(ge=0.0, le=MAX_BPM, allow_inf_nan=False)] | None
    transients: Annotated[list[Transient], Field(max_length=MAX_TRANSIENTS)]
    harmonic_content: HarmonicContent


class GroundTruthStems(WireModel):
    vocals: GroundTruthStem | None = None
    drums: GroundTruthStem | None = None
    bass: GroundTruthStem | None = None
    harmonic: GroundTruthStem | None = None
    perc: GroundTruthStem | None = None
    sub: GroundTruthStem | None = None


class UserCorrection(WireModel):
    corrected_stem: StemName
    correction_type: CorrectionType
    frequency_range: Annotated[list[Frequency], Field(min_length=2, max_length=2)] | None = None
    time_range: Annotated[list[Seconds], Field(min_length=2, max_length=2)] | None = None
    strength: Unit

    @model_validator(mode="after")
    def ranges_are_ordered(self) -> "UserCorrection":
        for name, pair in (("frequencyRange", self.frequency_range), ("timeRange", self.time_range)):
            if pair is not None and pair[0] > pair[1]:
                raise ValueError(f"{name} must be [low, high], got [{pair[0]}, {pair[1]}]")
        return self


class Metadata(WireModel):
    # Free text on the wire: the sanitiser checks it against a pattern before it is stored.
    classification: Annotated[str, Field(max_length=256)]
    confidence: Unit
    processing_time: Annotated[float, Field(ge=0.0, le=86_400_000.0, allow_inf_nan=False)]


class Snapshot(WireModel):
    """One separation, as Studio's exporter sends it."""

    model_config = ConfigDict(
        json_schema_extra={"$id": "https://prime-fabric/schemas/snapshot.schema.json"},
        title="StemSeparationSnapshot",
    )

    # Lax here only: a UUID arrives as a string, which strict mode would refuse.
    id: Annotated[UUID, Field(strict=False)]
    timestamp: Annotated[int, Field(ge=MIN_TIMESTAMP_MS, le=MAX_TIMESTAMP_MS)]
    original_audio: OriginalAudio
    quantum_features: QuantumFeatures
    musical_context: MusicalContext
    ground_truth_stems: GroundTruthStems | None = None
    user_corrections: Annotated[list[UserCorrection], Field(max_length=MAX_CORRECTIONS)] | None = None
    metadata: Metadata


# ---- Answers ---------------------------------------------------------------------------------

IngestStatus = Literal["stored", "duplicate", "conflict", "rejected"]


class SnapshotResult(CamelModel):
    index: int = Field(description="Position of the snapshot in the request (0 for a single one)")
    id: str | None = Field(description="The snapshot id, when one could be read")
    status: IngestStatus
    http_status: int = Field(description="What a request holding only this snapshot would get")
    reasons: list[Reason] = []
    rules_fired: dict[str, int] = Field(default={}, description="Sanitiser rules that changed it")
    quarantine_id: int | None = None


class IngestResponse(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "channel": "stem-separation",
                    "results": [
                        {
                            "index": 0,
                            "id": "c3ee5cb1-2d51-4e81-9318-1e718ea322c2",
                            "status": "stored",
                            "httpStatus": 201,
                            "reasons": [],
                            "rulesFired": {"transients_summarised": 200},
                        }
                    ],
                }
            ]
        }
    )

    channel: str
    results: list[SnapshotResult]


class ErrorResponse(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"detail": "body is not valid JSON: unexpected end of data: line 1 column 6 (char 5)", "quarantineId": 17}
            ]
        }
    )

    detail: str
    quarantine_id: int | None = None
