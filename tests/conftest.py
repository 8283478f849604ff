"""Shared test fixtures: a real Postgres database and a SQLite file, both migrated by Alembic,
and an app client bound to either. Postgres tests run against 127.0.0.1:5432 (CI has it);
on a machine without Postgres they are skipped, except under CI where that is a failure."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import delete

from app.db.engine import session_scope
from app.db.migrate import upgrade_database
from app.main import create_app
from app.quarantine.models import QuarantinedItem
from app.snapshots.models import Snapshot, SnapshotCorrection
from tests.support import (
    POSTGRES_ADMIN_URL,
    REDIS_URL,
    STUDIO_ORIGIN,
    create_postgres_database,
    drop_postgres_database,
    reset_caches,
)


def _postgres_available() -> bool:
    try:
        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


def require_postgres() -> None:
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"Postgres is not reachable at {POSTGRES_ADMIN_URL}")
        pytest.skip(f"Postgres is not reachable at {POSTGRES_ADMIN_URL}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    require_postgres()
    url = create_postgres_database(f"fabric_test_{os.getpid()}")
    yield url
    reset_caches()
    drop_postgres_database(url)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis (CI has it); skipped without it, except under CI where that is a failure."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'fabric.sqlite3'}"
    upgrade_database(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def configure(monkeypatch):
    """Sets environment variables for Settings and drops cached settings and engines."""

    def apply(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reset_caches()

    yield apply
    monkeypatch.undo()
    reset_caches()


@pytest.fixture
def db(configure, database_url) -> str:
    """An empty database (either backend) that the app's settings point at."""
    configure(
        DATABASE_URL=database_url,
        FABRIC_RATE_LIMIT_PER_S="100000",
        FABRIC_RATE_LIMIT_BURST="100000",
        FABRIC_CORS_ALLOWED_ORIGINS=json.dumps([STUDIO_ORIGIN]),
    )
    with session_scope() as session:
        for table in (SnapshotCorrection, Snapshot, QuarantinedItem):
            session.execute(delete(table))
    return database_url


@pytest.fixture
def client(db) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


# --- Songs played by sampled instruments (FluidSynth + FluidR3_GM), rendered once a session ---

INSTRUMENT_SONGS = 300  # 20 s each at 16 kHz: ~4 minutes to render on 2 cores
INSTRUMENT_SONG_SECONDS = 20.0
INSTRUMENT_SAMPLE_RATE = 16_000


@pytest.fixture(scope="session")
def instrument_songs() -> Path:
    """A multitrack set: one folder per song, six stem files each, seeds 0.. (the dev corpus
    and the held-out evaluation set use other seeds). Kept under var/ between runs, keyed by
    the renderer's source and these parameters, so a change to either renders afresh."""
    import hashlib
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from training import render
    from training.render import render_song

    key = hashlib.sha256(Path(render.__file__).read_bytes())
    key.update(f"{INSTRUMENT_SONGS}|{INSTRUMENT_SONG_SECONDS}|{INSTRUMENT_SAMPLE_RATE}".encode())
    root = Path(__file__).resolve().parent.parent / "var" / f"test-songs-{key.hexdigest()[:12]}"
    if not (root / "complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(
                pool.map(
                    lambda seed: render_song(root, seed, INSTRUMENT_SONG_SECONDS, INSTRUMENT_SAMPLE_RATE), range(INSTRUMENT_SONGS)
                )
            )
        (root / "complete").touch()
    return root


@pytest.fixture(scope="session")
def instrument_snapshots(instrument_songs) -> list[dict]:
    """The snapshots Studio would send for those songs, stems as ground truth."""
    from training.multitrack import read_song, song_folders, song_snapshot

    return [song_snapshot(read_song(folder)) for folder in song_folders(instrument_songs)]


@pytest.fixture(scope="session")
def instrument_splits(instrument_snapshots) -> dict:
    """train / validation / test Splits of those snapshots, split by id as datasets are."""
    from training.features import build_splits

    return build_splits(instrument_snapshots)
