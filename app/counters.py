"""The service's Prometheus counters and histograms, at the bottom of the house: ingest, the rate
limit and the ingest writer count here, and app/metrics.py (the request middleware, the
/metrics route and the scrape-time collector) reads them.

Each API process keeps its own; with several, PROMETHEUS_MULTIPROC_DIR (an empty folder shared
by them) lets /metrics add them up. Label values come from closed sets (configured channels,
outcome names, rejection reasons, route templates), so the series stay bounded.
"""

from prometheus_client import Counter, Histogram

INGEST_SNAPSHOTS = Counter(
    "fabric_ingest_snapshots_total",
    "Snapshots (or whole requests refused before any snapshot was read) by outcome",
    ["channel", "outcome", "reason"],
)
RATE_LIMITED = Counter("fabric_rate_limited_total", "Requests answered 429 by the per-client rate limit")
REQUEST_SECONDS = Histogram(
    "fabric_http_request_duration_seconds",
    "Time from a request's start to its answer's start",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 30),
)
INGEST_BATCH = Histogram(
    "fabric_ingest_batch_requests", "Ingest requests stored per transaction", buckets=(1, 2, 4, 8, 16, 32, 64)
)
INGEST_COMMIT_SECONDS = Histogram(
    "fabric_ingest_commit_seconds",
    "Time the ingest writer took to store a batch",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 15),
)


def count_ingest(channel: str | None, outcome: str, reason: str | None = None, channels: list[str] | None = None) -> None:
    known = channel if channel and channels is not None and channel in channels else "unknown"
    INGEST_SNAPSHOTS.labels(channel=known, outcome=outcome, reason=(reason or "")[:64]).inc()
