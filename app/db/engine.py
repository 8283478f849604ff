"""The engine and sessions, from the settings; what counts as "the database is not there"."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings

# Errors that mean "the database is not there" (down, unreachable, pool exhausted), not "this
# request is bad": the API answers them with 503 and Retry-After.
UNAVAILABLE_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, sa_exc.PendingRollbackError)


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the only Postgres driver we install)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the API read while a worker writes; busy_timeout waits instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def build_engine(url: str, pool_size: int = 10, backend_flush_after: str = "") -> Engine:
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict = {"connect_timeout": 3}
    if backend_flush_after:  # see Settings.postgres_backend_flush_after
        connect_args["options"] = f"-c backend_flush_after={backend_flush_after}"
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_timeout=5, connect_args=connect_args)
    event.listen(engine, "checkin", _note_checkin)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


# A connection that sat idle this long is pinged before use, so one broken by a Postgres restart
# or an idle timeout is replaced, not handed out. Pinging every checkout (pool_pre_ping) would
# cost a round trip per request. A connection in steady use needs no ping: if Postgres went away meanwhile, the statement fails,
# SQLAlchemy invalidates the pool, and the request answers 503 (which Studio retries).
PING_IF_IDLE_S = 5.0


def _note_checkin(_dbapi_connection, record) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
    if time.monotonic() - record.info.get("checked_in_at", 0.0) < PING_IF_IDLE_S:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        dbapi_connection.rollback()
    except Exception as error:
        # The pool discards this connection and checks out another (a new one if need be).
        raise sa_exc.DisconnectionError(f"idle connection failed its ping: {error}") from error


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    return build_engine(settings.database_url, settings.database_pool_size, settings.postgres_backend_flush_after)


def ping_database() -> None:
    """A round trip to the database; raises one of UNAVAILABLE_ERRORS when it is not there."""
    with get_engine().connect() as connection:
        connection.exec_driver_sql("SELECT 1")


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
