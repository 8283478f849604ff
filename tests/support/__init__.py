"""Plain helpers that tests and benchmarks share (no pytest here): Studio's fixtures and
headers, databases on the local Postgres, and dropping the app's cached settings."""

import copy
import gzip
import json
import os
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from app.config import get_settings
from app.db.engine import get_engine, get_sessionmaker
from app.db.migrate import upgrade_database

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE_NAMES = ["snapshot-with-ground-truth", "snapshot-mono-no-ground-truth", "snapshot-with-corrections-and-nan"]
REDIS_URL = os.environ.get("FABRIC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_ADMIN_URL = os.environ.get("FABRIC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
STUDIO_ORIGIN = "http://localhost:5173"

# Exactly what Studio's exporter sends with fetch(), and what navigator.sendBeacon() sends.
FETCH_HEADERS = {
    "Content-Type": "application/json",
    "X-Prime-Fabric-Channel": "stem-separation",
    "Origin": STUDIO_ORIGIN,
}
BEACON_HEADERS = {"Content-Type": "text/plain;charset=UTF-8", "Origin": STUDIO_ORIGIN}


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def fixture_snapshot(name: str = "snapshot-with-ground-truth", **changes) -> dict:
    """A fixture as a dict with a fresh id (so tests do not collide), plus changes."""
    snapshot = copy.deepcopy(json.loads(fixture_bytes(name)))
    snapshot["id"] = str(uuid.uuid4())
    snapshot.update(changes)
    return snapshot


def amplified_gzip_body() -> bytes:
    """~16 KB of gzip that inflates to a 16 MiB JSON array of eight million zeros."""
    return gzip.compress(b"[" + b"0," * (8 * 1024 * 1024 - 1) + b"0]", compresslevel=9)


def create_postgres_database(name: str, migrate: bool = True) -> str:
    """A new database on the local Postgres server (migrated unless told not to); returns its URL."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    if migrate:
        upgrade_database(url)
    return url


def drop_postgres_database(url: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {make_url(url).database} WITH (FORCE)")


def reset_caches() -> None:
    """Drops cached settings, engines and the Celery sender, so the next use reads the environment."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    from app.artifacts import get_store
    from app.broker import get_celery

    for cached in (get_settings, get_engine, get_sessionmaker, get_celery, get_store):
        cached.cache_clear()
