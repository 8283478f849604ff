"""The Postgres pool: a connection idle past PING_IF_IDLE_S is pinged and replaced if its server
side is gone; one in steady use is not pinged (that round trip per request is what it saves)."""

import psycopg
import pytest
from sqlalchemy import exc, text

from app.db import engine as database
from tests.support import POSTGRES_ADMIN_URL

pytestmark = pytest.mark.postgres


def _backend_pid_after_killing_it(engine) -> int:
    """Checks a connection out and back in, having terminated its server process meanwhile."""
    with engine.connect() as connection:
        pid = connection.scalar(text("SELECT pg_backend_pid()"))
        connection.rollback()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    # Back in the pool, looking healthy: the broken socket is only seen when next used.
    return pid


def test_an_idle_connection_whose_server_went_away_is_replaced_before_use(postgres_url, monkeypatch):
    engine = database.build_engine(postgres_url, pool_size=1)
    try:
        dead_pid = _backend_pid_after_killing_it(engine)
        monkeypatch.setattr(database, "PING_IF_IDLE_S", 0.0)  # every connection counts as idle
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT pg_backend_pid()")) != dead_pid
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged(postgres_url, monkeypatch):
    engine = database.build_engine(postgres_url, pool_size=1)
    try:
        _backend_pid_after_killing_it(engine)
        monkeypatch.setattr(database, "PING_IF_IDLE_S", 3600.0)
        # No ping: the statement meets the broken connection (the API answers this with 503)...
        with pytest.raises(exc.OperationalError), engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        # ...and the pool is invalidated, so the next request gets a fresh connection.
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT 1")) == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("setting, expected", [("256kB", "256kB"), ("", "0")])
def test_connections_carry_the_configured_backend_flush_after(postgres_url, setting, expected):
    """Ingest writes ~10 MB/s of rows; without flush hints the kernel wrote them in bursts that
    stalled commits for 100-250 ms (bench/commit_stalls.py). "" leaves the server's default."""
    engine = database.build_engine(postgres_url, pool_size=1, backend_flush_after=setting)
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("SHOW backend_flush_after")) == expected
    finally:
        engine.dispose()


def test_the_settings_default_reaches_the_api_engine(postgres_url, configure):
    from app.config import Settings

    configure(DATABASE_URL=postgres_url)
    with database.get_engine().connect() as connection:
        assert connection.scalar(text("SHOW backend_flush_after")) == Settings().postgres_backend_flush_after


def test_a_transaction_whose_connection_dies_at_commit_raises_an_unavailable_error(postgres_url):
    """atomic() on the ingest writer's autocommit connection: the server going away before
    COMMIT answers must surface as "database unavailable" (503, retried), not as an error about
    the invalidated connection (a 500), which is what reading connection.info afterwards gave."""
    from app.db.writes import atomic

    engine = database.build_engine(postgres_url, pool_size=1)
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            pid = connection.scalar(text("SELECT pg_backend_pid()"))
            with pytest.raises(database.UNAVAILABLE_ERRORS):
                with atomic(connection):
                    connection.exec_driver_sql("SELECT 1")
                    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
                        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        engine.dispose()
