"""Statistics on the wire (GET /stats/...) and as the dashboard renders them."""

from datetime import datetime

from app.wire import CamelModel


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
    window: StatsWindow
    total: int
    with_ground_truth: int
    with_corrections: int
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
