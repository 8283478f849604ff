"""Statistics as SQL aggregates: the database counts, Python only labels and fills gaps.
Every figure is one or a few GROUP BY / FILTER queries over indexed columns, so the cost
grows with the number of rows scanned, never with the size of their feature blobs."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from app.datasets.models import Dataset
from app.db.base import as_utc
from app.quarantine.models import QuarantinedItem
from app.snapshots.models import Snapshot, SnapshotCorrection
from app.stats.schemas import (
    Count,
    DatasetAudit,
    Distributions,
    Overview,
    RejectionCount,
    StatsWindow,
    StreamLengths,
)
from training.contract import FEATURE_STREAMS, KEYS, STEMS

RangeName = Literal["24h", "7d", "30d", "90d", "all"]
RANGES: dict[str, timedelta | None] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}
MAX_DAYS = 366
# Windows are bounded to dates a snapshot can have (and date arithmetic cannot overflow).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
BPM_EDGES = (0, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, 200)
DURATION_EDGES_S = (0, 15, 30, 60, 120, 180, 240, 300, 420, 600, 1200)
# Studio keeps at most 1000 values per stream: "≥1000" means it downsampled a long track.
STREAM_LENGTH_EDGES = (0, 1, 100, 250, 500, 750, 1000)


def window_for(
    range_name: RangeName = "all",
    since: datetime | None = None,
    until: datetime | None = None,
    channel: str | None = None,
    now: datetime | None = None,
) -> StatsWindow:
    """Explicit `since`/`until` win over the named range, which ends now. A bound outside
    2000-2100 is a ValueError."""
    now = now or datetime.now(UTC)
    since, until = as_utc(since), as_utc(until)
    for bound in (since, until):
        if bound is not None and not EARLIEST <= bound <= LATEST:
            raise ValueError(f"{bound.date().isoformat()} is outside {EARLIEST.date()} to {LATEST.date()}")
    span = RANGES[range_name]
    if since is None and span is not None:
        since = (until or now) - span
    return StatsWindow(since=since, until=until, channel=channel or None)


def overview(window: StatsWindow, now: datetime | None = None, *, db_session: Session) -> Overview:
    now = now or datetime.now(UTC)
    where = _snapshot_conditions(window)
    total, with_truth, with_corrections, unlabelled, duplicates = db_session.execute(
        select(
            func.count(),
            func.count().filter(Snapshot.has_ground_truth.is_(True)),
            func.count().filter(Snapshot.correction_count > 0),
            func.count().filter(Snapshot.has_ground_truth.is_(False), Snapshot.correction_count == 0),
            func.coalesce(func.sum(Snapshot.duplicates_absorbed), 0),
        )
        .select_from(Snapshot)
        .where(*where)
    ).one()
    rejected = [
        RejectionCount(reason_type=reason, items=items, occurrences=int(occurrences))
        for reason, items, occurrences in db_session.execute(
            select(QuarantinedItem.reason_type, func.count(), func.sum(QuarantinedItem.occurrences))
            .where(*_quarantine_conditions(window))
            .group_by(QuarantinedItem.reason_type)
            .order_by(func.count().desc(), QuarantinedItem.reason_type)
        )
    ]
    recent = [Snapshot.channel == window.channel] if window.channel else []
    last_minute, last_5_minutes = db_session.execute(
        select(
            func.count().filter(Snapshot.received_at >= now - timedelta(minutes=1)),
            func.count().filter(Snapshot.received_at >= now - timedelta(minutes=5)),
        )
        .select_from(Snapshot)
        .where(Snapshot.received_at >= now - timedelta(minutes=5), *recent)
    ).one()
    return Overview(
        window=window,
        total=total,
        with_ground_truth=with_truth,
        with_corrections=with_corrections,
        without_labels=unlabelled,
        duplicates_absorbed=duplicates,
        rejected_items=sum(r.items for r in rejected),
        rejected_occurrences=sum(r.occurrences for r in rejected),
        rejected_by_reason=rejected,
        per_day=_per_day(db_session, window, now),
        per_hour=_per_hour(db_session, window, now),
        ingest_per_s_last_minute=round(last_minute / 60, 2),
        ingest_per_s_last_5_minutes=round(last_5_minutes / 300, 2),
    )


def distributions(window: StatsWindow, *, db_session: Session) -> Distributions:
    where = _snapshot_conditions(window)
    key_mode = db_session.execute(
        select(Snapshot.key, Snapshot.mode, func.count()).where(*where).group_by(Snapshot.key, Snapshot.mode)
    ).all()
    key_mode.sort(key=lambda row: (KEYS.index(row[0]), row[1] or "unknown"))  # C major, C minor, C# ...

    # One scan: how many snapshots, how many with ground truth, and with each stem of it.
    total, with_truth, *per_stem = db_session.execute(
        select(
            func.count(),
            func.count().filter(Snapshot.has_ground_truth.is_(True)),
            *[func.count().filter(getattr(Snapshot, f"gt_{stem}").is_not(None)) for stem in STEMS],
        )
        .select_from(Snapshot)
        .where(*where)
    ).one()

    corrections = select(SnapshotCorrection).join(Snapshot).where(*where).subquery()
    return Distributions(
        window=window,
        total=total,
        classification=_grouped(db_session, Snapshot.classification, where),
        key_mode=[Count(label=f"{key} {mode or 'unknown'}", count=count) for key, mode, count in key_mode],
        bpm=_histogram(db_session, Snapshot.bpm, BPM_EDGES, where, none_label="none"),
        duration_s=_histogram(db_session, Snapshot.duration_s, DURATION_EDGES_S, where),
        sample_rate=_grouped(db_session, Snapshot.sample_rate, where, by_count=False),
        audio_channels=_grouped(db_session, Snapshot.channels, where, by_count=False),
        stream_lengths=_stream_lengths(db_session, where),
        with_ground_truth=with_truth,
        ground_truth_by_stem=[Count(label=stem, count=n) for stem, n in zip(STEMS, per_stem, strict=True)],
        corrections_by_stem=_grouped(db_session, corrections.c.stem),
        corrections_by_type=_grouped(db_session, corrections.c.correction_type),
        latest_dataset=_latest_dataset(db_session),
    )


def channels_seen(*, db_session: Session) -> list[str]:
    return list(db_session.scalars(select(Snapshot.channel).distinct().order_by(Snapshot.channel)))


def _snapshot_conditions(window: StatsWindow) -> list[ColumnElement[bool]]:
    return _window_conditions(window, Snapshot.received_at, Snapshot.channel)


def _quarantine_conditions(window: StatsWindow) -> list[ColumnElement[bool]]:
    # A rejection counts in the window in which it was first seen; retries add occurrences.
    return _window_conditions(window, QuarantinedItem.first_seen_at, QuarantinedItem.channel)


def _window_conditions(window: StatsWindow, received: ColumnElement, channel: ColumnElement) -> list[ColumnElement[bool]]:
    conditions = []
    if window.since is not None:
        conditions.append(received >= window.since)
    if window.until is not None:
        conditions.append(received < window.until)
    if window.channel:
        conditions.append(channel == window.channel)
    return conditions


def _time_bucket(session: Session, column: ColumnElement, unit: Literal["day", "hour"]) -> ColumnElement[str]:
    """The UTC day ("YYYY-MM-DD") or hour ("YYYY-MM-DD HH") of a timestamp, as text."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD" if unit == "day" else "YYYY-MM-DD HH24")
    return func.strftime("%Y-%m-%d" if unit == "day" else "%Y-%m-%d %H", column)


def _per_day(session: Session, window: StatsWindow, now: datetime) -> list[Count]:
    day = _time_bucket(session, Snapshot.received_at, "day")
    counts = dict(session.execute(select(day, func.count()).where(*_snapshot_conditions(window)).group_by(day)).all())
    if not counts and window.since is None:
        return []
    end = (window.until - timedelta(microseconds=1) if window.until else now).date()
    first = window.since.date() if window.since else min(datetime.strptime(d, "%Y-%m-%d").date() for d in counts)
    start = max(first, end - timedelta(days=MAX_DAYS - 1))
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    return [Count(label=d, count=counts.get(d, 0)) for d in days]


def _per_hour(session: Session, window: StatsWindow, now: datetime) -> list[Count]:
    # The 24 whole hours up to the end of the hour in which the window ends.
    moment = window.until - timedelta(microseconds=1) if window.until else now
    end = moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=24)
    hour = _time_bucket(session, Snapshot.received_at, "hour")
    last_day = StatsWindow(
        since=max(start, window.since) if window.since else start,
        until=min(end, window.until) if window.until else end,
        channel=window.channel,
    )
    counts = dict(session.execute(select(hour, func.count()).where(*_snapshot_conditions(last_day)).group_by(hour)).all())
    hours = [(start + timedelta(hours=i)).strftime("%Y-%m-%d %H") for i in range(24)]
    return [Count(label=h, count=counts.get(h, 0)) for h in hours]


def _bin_labels(edges: Sequence[float]) -> list[str]:
    return [f"{lo:g}–{hi:g}" for lo, hi in zip(edges, edges[1:], strict=False)] + [f"≥{edges[-1]:g}"]


def _bin_index(column: ColumnElement, edges: Sequence[float]) -> ColumnElement[int]:
    """Which of `edges`' bins a value falls in: [e0, e1) is 0, ..., [last, inf) is len - 1."""
    return case(*[(column < upper, index) for index, upper in enumerate(edges[1:])], else_=len(edges) - 1)


def _histogram(
    session: Session,
    column: ColumnElement,
    edges: Sequence[float],
    where: list[ColumnElement[bool]],
    none_label: str | None = None,
) -> list[Count]:
    """Counts per bin, from the first bin with data to the last (empty bins between kept)."""
    index = case((column.is_(None), -1), else_=_bin_index(column, edges))
    counts = dict(session.execute(select(index, func.count()).where(*where).group_by(index)).all())
    filled = [i for i in counts if i >= 0]
    labels = _bin_labels(edges)
    bins = [Count(label=labels[i], count=counts.get(i, 0)) for i in range(min(filled), max(filled) + 1)] if filled else []
    if none_label is not None and counts.get(-1):
        bins.append(Count(label=none_label, count=counts[-1]))
    return bins


def _stream_lengths(session: Session, where: list[ColumnElement[bool]]) -> list[StreamLengths]:
    """One scan for all streams: each stream's length (blob bytes / 4 = float32 values) is
    computed once per row, then counted per bin. Postgres reads a length from the TOAST
    pointer, so the blobs themselves are not read."""
    # Lengths are whole numbers, so a bin says its last value: "1–99", not "1–100".
    edges = STREAM_LENGTH_EDGES
    labels = [f"{lo}" if hi - lo == 1 else f"{lo}–{hi - 1}" for lo, hi in zip(edges, edges[1:], strict=False)] + [f"≥{edges[-1]}"]
    lengths = select(*[(func.length(getattr(Snapshot, stream)) / 4).label(stream) for stream in FEATURE_STREAMS])
    lengths = lengths.select_from(Snapshot).where(*where).subquery()
    bounds = [*edges, None]
    columns = [
        func.count().filter(lengths.c[stream] >= low, *([lengths.c[stream] < high] if high is not None else []))
        for stream in FEATURE_STREAMS
        for low, high in zip(bounds, bounds[1:], strict=False)
    ]
    row = session.execute(select(*columns)).one()
    bins = len(labels)
    return [
        StreamLengths(stream=stream, buckets=[Count(label=label, count=row[s * bins + i]) for i, label in enumerate(labels)])
        for s, stream in enumerate(FEATURE_STREAMS)
    ]


def _grouped(
    session: Session, column: ColumnElement, where: Sequence[ColumnElement[bool]] = (), by_count: bool = True
) -> list[Count]:
    """Counts per value, most frequent first (or in the values' own order)."""
    query = select(column, func.count()).where(*where).group_by(column)
    query = query.order_by(func.count().desc(), column) if by_count else query.order_by(column)
    return [Count(label=str(value), count=count) for value, count in session.execute(query)]


def _latest_dataset(session: Session) -> DatasetAudit | None:
    dataset = session.scalar(select(Dataset).order_by(Dataset.id.desc()).limit(1))
    if dataset is None:
        return None
    return DatasetAudit(
        id=dataset.id,
        run_label=dataset.run_label,
        created_at=dataset.created_at,
        train_count=dataset.train_count,
        validation_count=dataset.validation_count,
        audit=dataset.manifest.get("audit", {}),
    )
