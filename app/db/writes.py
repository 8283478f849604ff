"""Writes on hot paths: the dialect's INSERT with ON CONFLICT, a transaction on an autocommit
connection, and an INSERT run straight on the driver (ingest)."""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Connection, Insert, Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect


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
    info = connection.info  # read now: on a connection lost meanwhile, reading it raises
    info[_IN_ATOMIC] = True
    try:
        yield
        connection.exec_driver_sql("COMMIT")
    except BaseException:
        with suppress(Exception):  # a connection that is gone has rolled back on its own
            connection.exec_driver_sql("ROLLBACK")
        raise
    finally:
        info.pop(_IN_ATOMIC, None)


class DriverInsert:
    """An INSERT that SQLAlchemy compiles once for a dialect and that then runs on the
    connection's DBAPI cursor, in the connection's transaction.

    Why (docs/decisions/driver-insert.md): Core's work per execution (building parameters, an
    execution context, a result) was a large part of ingest's CPU per snapshot, and the ingest
    writer's Python work also holds the GIL the event loop needs.
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
