"""Statistics on the wire (GET /stats/...) and as the dashboard renders them."""

from datetime import datetime

from pydantic import ConfigDict

from app.schema_base import CamelModel


class StatsWindow(CamelModel):
    """Which snapshots a figure counts: received in [since, until), on one channel or all."""

    since: datetime | None = None
    until: datetime | None = None
    channel: str | None = None


class Count(CamelModel):
    label: str
    count: int


class RejectionCount(CamelModel):
    reason_type: str
    items: int  # distinct rejected bodies (quarantine rows)
    occurrences: int  # with the retries that sent the same body again


class Overview(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "window": {"since": "2026-11-14T08:00:00Z", "until": None, "channel": None},
                    "total": 1830,
                    "withGroundTruth": 412,
                    "withCorrections": 97,
                    "withoutLabels": 1321,
                    "duplicatesAbsorbed": 14,
                    "rejectedItems": 3,
                    "rejectedOccurrences": 11,
                    "rejectedByReason": [
                        {"reasonType": "validation", "items": 2, "occurrences": 10},
                        {"reasonType": "malformed_json", "items": 1, "occurrences": 1},
                    ],
                    "perDay": [{"label": "2026-11-20", "count": 260}, {"label": "2026-11-21", "count": 181}],
                    "perHour": [{"label": "2026-11-21 07", "count": 22}, {"label": "2026-11-21 08", "count": 9}],
                    "ingestPerSLastMinute": 0.35,
                    "ingestPerSLast5Minutes": 0.31,
                }
            ]
        }
    )

    window: StatsWindow
    total: int
    with_ground_truth: int
    with_corrections: int
    # Neither ground truth nor corrections: what most of Studio's own traffic is (its call passes
    # no ground truth; imported multitracks bring it, users' corrections are the only other label).
    without_labels: int
    duplicates_absorbed: int  # retries answered "duplicate" instead of stored again
    rejected_items: int
    rejected_occurrences: int
    rejected_by_reason: list[RejectionCount]
    per_day: list[Count]  # "YYYY-MM-DD" (UTC), every day of the window (at most the last 366)
    per_hour: list[Count]  # "YYYY-MM-DD HH" (UTC), the 24 hours before the window's end
    ingest_per_s_last_minute: float
    ingest_per_s_last_5_minutes: float


class StreamLengths(CamelModel):
    stream: str
    buckets: list[Count]  # values per stream (Studio keeps at most 1000)


class DatasetAudit(CamelModel):
    id: int
    run_label: str
    created_at: datetime
    train_count: int
    validation_count: int
    audit: dict


class Distributions(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "window": {"since": None, "until": None, "channel": "stem-separation"},
                    "total": 3,
                    "classification": [{"label": "full", "count": 2}, {"label": "twotrack", "count": 1}],
                    "keyMode": [{"label": "D major", "count": 1}, {"label": "A# minor", "count": 2}],
                    "bpm": [{"label": "110–120", "count": 1}, {"label": "120–130", "count": 1}, {"label": "none", "count": 1}],
                    "durationS": [{"label": "0–15", "count": 3}],
                    "sampleRate": [{"label": "48000", "count": 3}],
                    "audioChannels": [{"label": "1", "count": 1}, {"label": "2", "count": 2}],
                    "streamLengths": [
                        {"stream": "stereo", "buckets": [{"label": "1–99", "count": 1}, {"label": "500–749", "count": 2}]}
                    ],
                    "withGroundTruth": 2,
                    "groundTruthByStem": [{"label": "vocals", "count": 2}],
                    "correctionsByStem": [{"label": "perc", "count": 1}],
                    "correctionsByType": [{"label": "isolation", "count": 1}],
                    "latestDataset": {
                        "id": 4,
                        "runLabel": "weekly",
                        "createdAt": "2026-11-21T06:00:02Z",
                        "trainCount": 1620,
                        "validationCount": 395,
                        "audit": {"duplicate_content_skipped": 3},
                    },
                }
            ]
        }
    )

    window: StatsWindow
    total: int
    classification: list[Count]
    key_mode: list[Count]
    bpm: list[Count]  # 10-BPM bins; "none" where Studio had no tempo
    duration_s: list[Count]
    sample_rate: list[Count]
    audio_channels: list[Count]
    stream_lengths: list[StreamLengths]
    with_ground_truth: int
    ground_truth_by_stem: list[Count]
    corrections_by_stem: list[Count]
    corrections_by_type: list[Count]
    latest_dataset: DatasetAudit | None
