"""Engine, sessions and the declarative base shared by every domain's `models.py`."""

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

from annotated_types import Ge, Le
from sqlalchemy import Connection, Insert, MetaData, Table, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from app.config import get_settings

# Stable constraint names, so Alembic migrations are the same on Postgres and SQLite.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# What an INTEGER primary key can hold: ids outside it are refused (422) before any query,
# which Postgres would otherwise answer with an error (found by the fuzzer).
ROW_ID_MAX = 2**31 - 1
RowId = Annotated[int, Ge(1), Le(ROW_ID_MAX)]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Errors that mean "the database is not there" (down, unreachable, pool exhausted), not "this
# request is bad": the API answers them with 503 and Retry-After.
UNAVAILABLE_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


def as_utc(moment: datetime | None) -> datetime | None:
    """Every timestamp here is UTC: a naive one (SQLite hands them back without their zone, and
    a query parameter may lack one) is taken as UTC, an aware one converted to it."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
    engine = create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_timeout=5, connect_args=connect_args
    )
    event.listen(engine, "checkin", _note_checkin)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


# A connection that sat idle this long is pinged before use, so one broken by a Postgres restart
# or an idle timeout is replaced, not handed out. Pinging every checkout (pool_pre_ping) cost a
# round trip per request: 0.07-0.08 ms of the API's CPU per ingested snapshot (measured). A
# connection in steady use needs no ping: if Postgres went away meanwhile, the statement fails,
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


def dialect_insert(dialect_name: str, table: Table):
    """The dialect's INSERT, which has `on_conflict_do_nothing`/`on_conflict_do_update`."""
    return (postgresql.insert if dialect_name == "postgresql" else sqlite.insert)(table)


_IN_ATOMIC = "prime_fabric.in_atomic"  # connection.info key: atomic() has a transaction open


@contextmanager
def atomic(connection: Connection) -> Iterator[None]:
    """One transaction for the statements inside. On a connection in autocommit (the ingest
    writer's, where each statement commits alone) it sends BEGIN and COMMIT itself; inside a
    transaction already (its own, or the caller's) it adds nothing, that one being atomic."""
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT" or connection.info.get(_IN_ATOMIC):
        yield
        return
    connection.exec_driver_sql("BEGIN")
    connection.info[_IN_ATOMIC] = True
    try:
        yield
        connection.exec_driver_sql("COMMIT")
    except BaseException:
        with suppress(Exception):  # a connection that is gone has rolled back on its own
            connection.exec_driver_sql("ROLLBACK")
        raise
    finally:
        del connection.info[_IN_ATOMIC]


class DriverInsert:
    """An INSERT that SQLAlchemy compiles once for a dialect and that then runs on the
    connection's DBAPI cursor, in the connection's transaction.

    Why: Core's work per execution (building parameters, an execution context, a result) cost
    ~0.1 ms of CPU for a snapshot's 35-column row, and more under load, where the ingest
    writer's Python work also holds the GIL the event loop needs (measured; see the README).
    What reaches the driver is what Core would send: the SQL Core compiles (placeholders and
    casts), the scalar Python defaults Core would fill in, and each column type's bind
    processor. Driver errors are raised as SQLAlchemy's, and a lost connection is invalidated,
    as Core does, so callers handle one family of errors. For hot paths only (ingest).
    """

    def __init__(self, statement: Insert, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.sql = compiled.string
        self.returns_rows = bool(compiled.effective_returning)
        self._defaults: dict[str, Any] = {}
        for column in compiled.insert_prefetch:  # columns with a Python-side default
            if column.default is None or not column.default.is_scalar:
                raise ValueError(f"{column.key}: only scalar Python defaults can be filled in here")
            self._defaults[column.key] = column.default.arg
        self._order = list(compiled.positiontup) if compiled.positional else None
        self._processors = [
            (name, processor)
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]

    def parameters(self, row: Mapping[str, Any]) -> dict[str, Any] | list[Any]:
        values = {**self._defaults, **row}
        for name, process in self._processors:
            values[name] = process(values[name])
        return values if self._order is None else [values[name] for name in self._order]

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> list[tuple]:
        """Inserts the rows; returns the rows RETURNING gave, as the driver gives them (none
        for a row that ON CONFLICT DO NOTHING skipped)."""
        parameters = [self.parameters(row) for row in rows]
        cursor = connection.connection.cursor()
        try:
            if not self.returns_rows:
                cursor.executemany(self.sql, parameters)
                return []
            returned: list[tuple] = []
            for values in parameters:
                cursor.execute(self.sql, values)
                returned += cursor.fetchall()
            return returned
        except connection.dialect.loaded_dbapi.Error as error:
            raise _as_sqlalchemy_error(connection, cursor, self.sql, error) from error
        finally:
            cursor.close()


def _as_sqlalchemy_error(connection: Connection, cursor: Any, sql: str, error: Exception) -> sa_exc.DBAPIError:
    """The error Core would have raised for this driver error, invalidating the connection
    (so the pool replaces it) if the database went away."""
    dialect = connection.dialect
    disconnected = dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
    if disconnected:
        connection.invalidate(error)
    return sa_exc.DBAPIError.instance(
        sql, None, error, dialect.loaded_dbapi.Error, connection_invalidated=disconnected, dialect=dialect
    )


def upgrade_database(url: str | None = None) -> None:
    """Brings the database to the newest Alembic revision (creating a SQLite file's folder)."""
    from pathlib import Path

    from alembic import command
    from alembic.config import Config

    url = url or get_settings().database_url
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parent.parent
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
