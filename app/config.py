"""The one settings object. Every value can be set from the environment (prefix `FABRIC_`,
except the conventional `DATABASE_URL`, `CELERY_BROKER_URL` and `CELERY_RESULT_BACKEND`)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The embedded default keeps its state here, so `make run` needs no servers.
VAR_DIR = Path(__file__).resolve().parent.parent / "var"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FABRIC_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{VAR_DIR / 'fabric.sqlite3'}",
        validation_alias=AliasChoices("DATABASE_URL", "FABRIC_DATABASE_URL"),
    )
    # Connections kept per API/worker process; Postgres only (SQLite uses one file).
    database_pool_size: int = 10
    # Most ingest requests one API process stores in one transaction (group commit: see
    # app/snapshots/writer.py). Batches are only as big as what is waiting; a request
    # waiting alone is stored in autocommit.
    ingest_batch_max: int = Field(default=32, ge=1)
    # While the database is unreachable (a restart, a failover), an ingest request waits for it
    # this long before the API answers 503, and at most this many wait (~150 KB each) in one
    # process; more are answered 503 at once. See app/snapshots/writer.py.
    ingest_database_wait_s: float = Field(default=15.0, ge=0)
    ingest_max_waiting: int = Field(default=1000, ge=1)
    # Postgres' backend_flush_after for our connections: a backend asks the kernel to write
    # what it wrote every this much, so ingest's rows go to disk as they come rather than in
    # the kernel's periodic bursts, which stalled commits (docs/decisions/backend-flush-after.md).
    # "" leaves the server's setting.
    postgres_backend_flush_after: str = Field(default="256kB", pattern=r"^(\d+(kB|MB)?)?$")

    # The embedded broker is a folder on disk (kombu's filesystem transport).
    celery_broker_url: str = Field(
        default="filesystem://",
        validation_alias=AliasChoices("CELERY_BROKER_URL", "FABRIC_CELERY_BROKER_URL"),
    )
    # Where the embedded (filesystem) broker and result backend keep their files.
    embedded_broker_dir: Path = VAR_DIR / "broker"
    celery_result_backend: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CELERY_RESULT_BACKEND", "FABRIC_CELERY_RESULT_BACKEND"),
    )
    # Which kind of worker this process is ("cpu" or "gpu"): the same code, other queues.
    worker_kind: str = "cpu"
    task_visibility_timeout_s: int = 6 * 3600
    # A queued run no worker has started this long after it was sent is sent again; after this
    # many sendings it fails with the reason. The API looks for such runs this often.
    # (app/training_runs/flows.py)
    run_dispatch_timeout_s: float = Field(default=120.0, gt=0)
    run_max_dispatches: int = Field(default=3, ge=1)
    run_sweep_interval_s: float = Field(default=30.0, gt=0)
    # Where training runs go: "gpu" sends them to GPU workers.
    training_queue: str = "cpu"
    # Datasets (shards), run checkpoints and published models (app/artifacts.py). Unset
    # artifacts_url: they live in artifacts_dir, which workers that may resume each other's
    # runs, and the API, must share. artifacts_url=s3://bucket/prefix: they live in that bucket
    # (AWS S3, MinIO, R2, GCS interop) and artifacts_dir is each machine's own working copy.
    artifacts_dir: Path = VAR_DIR / "artifacts"
    artifacts_url: str | None = Field(default=None, pattern=r"^s3://[^/]+(/.*)?$")
    artifacts_endpoint: str | None = None  # e.g. http://minio:9000; unset: AWS's own
    artifacts_region: str = "us-east-1"
    artifacts_access_key_id: str | None = Field(
        default=None, validation_alias=AliasChoices("FABRIC_ARTIFACTS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")
    )
    artifacts_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("FABRIC_ARTIFACTS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")
    )
    artifacts_connect_timeout_s: float = Field(default=5.0, gt=0)
    artifacts_request_timeout_s: float = Field(default=120.0, gt=0)  # per request; large files go in parts
    # A request that fails (connection refused, 5xx, timeout) is retried with backoff for this
    # long before the store counts as unavailable (a worker's stage fails; the API answers 503).
    artifacts_retry_timeout_s: float = Field(default=20.0, gt=0)
    # With a bucket: how many datasets, and how many models, each machine keeps copies of.
    artifacts_local_copies: int = Field(default=8, ge=2)
    # A multitrack set (one folder per song, a WAV/FLAC file per stem) on which each run's model
    # is also judged as Studio would use it: filter stems with and without its gains, scored
    # against the true stems (training/audio_eval.py). Unset: runs skip that judgement.
    evaluation_songs_dir: Path | None = None

    # Channels Studio may send on; the path or `X-Prime-Fabric-Channel` header names one.
    channels: list[str] = ["stem-separation"]

    # The addresses this service is reached at, as Studio fetches weights from them. The URLs in
    # /models/latest are built from the one a request came in by, or the first; never from an
    # arbitrary Host header (which would be echoed to clients and grow a cache without bound).
    public_base_urls: list[str] = Field(default=["http://127.0.0.1:8000", "http://localhost:8000"], min_length=1)

    # CORS: Studio runs on its own origin and sends a custom header, so browsers preflight.
    cors_allowed_origins: list[str] = ["http://localhost:5173", "http://127.0.0.1:5173"]
    cors_max_age_s: int = 600

    # Connections, per API process (app/serving.py). A request's headers must arrive within
    # request_header_timeout_s of the connection opening (or of the previous answer), its body
    # within request_body_timeout_s of its headers (else 408); an idle kept-alive connection is
    # closed after keep_alive_timeout_s. Beyond max_connections open connections or requests in
    # flight, new requests get 503 at once; keep the process's open-file limit above it.
    request_header_timeout_s: float = Field(default=10.0, gt=0)
    request_body_timeout_s: float = Field(default=30.0, gt=0)
    keep_alive_timeout_s: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=2000, ge=1)
    # Addresses of the reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed
    # (comma-separated; "*" believes anyone: only where nothing reaches the API but the proxy).
    # Others' headers are ignored, so a client cannot pick its rate-limit bucket.
    trusted_proxies: str = "127.0.0.1"

    # Limits. A Studio snapshot is ~70-130 KB of JSON; a beacon is at most 64 KiB.
    # As sent on the wire (compressed or not): as much as a gzip body may decode to, so a plain one
    # costs no more memory. Studio's fetch sends plain JSON: ten loud minutes are ~15 MiB of it.
    max_body_bytes: int = 16 * 1024 * 1024
    max_decoded_body_bytes: int = 16 * 1024 * 1024  # after gzip: a bomb stops here
    max_snapshots_per_request: int = 100
    # JSON values (commas) in one decoded body, checked before it is parsed: a Studio snapshot
    # holds ~4,000-8,000, so this is 100 of them with room to spare.
    max_values_per_request: int = 1_500_000
    # Token bucket per client address: sustained rate and burst.
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 200
    # How much of a rejected body the quarantine keeps (a whole Studio snapshot fits).
    quarantine_body_max_bytes: int = 256 * 1024

    # The admin dashboard's login session. Its cookie is Secure whenever the request came over
    # TLS (behind a proxy: run uvicorn with --proxy-headers); set this to force it.
    dashboard_session_ttl_s: int = 8 * 3600
    dashboard_cookie_secure: bool = False

    log_level: str = "info"
    # "json": one object a line with the request's (or task's) id (app/logs.py); "text" for people.
    log_format: Literal["json", "text"] = "json"
    # A worker serves its Prometheus metrics (tasks, stage durations) on this port; 0: not at all.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)


@lru_cache
def get_settings() -> Settings:
    return Settings()
