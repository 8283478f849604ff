"""database.DriverInsert: ingest's inserts run on the DBAPI cursor, skipping Core's work per
row. What it stores, and how its errors surface, must be what Core's would be."""

import uuid

import psycopg
import pytest
from sqlalchemy import exc, insert, select, text

from app.config import get_settings
from app.db.engine import get_engine
from app.db.writes import DriverInsert
from app.quarantine.service import RequestContext
from app.snapshots import service
from app.snapshots.models import Snapshot, SnapshotCorrection
from tests.support import POSTGRES_ADMIN_URL, fixture_bytes


def _snapshot_rows() -> tuple[dict, list[dict]]:
    """A fixture with corrections, as the service would store it, under a new id."""
    context = RequestContext(channel="stem-separation", origin=None, content_type="application/json", content_encoding=None)
    prepared = service.prepare_request(fixture_bytes("snapshot-with-corrections-and-nan"), context, get_settings())
    clean = prepared.items[0].clean
    assert clean.corrections, "this test needs a fixture with corrections"
    return service.stored_rows(clean, uuid.uuid4(), context)


def _stored(connection, snapshot_id) -> tuple[dict, list[dict]]:
    snapshot = connection.execute(select(Snapshot.__table__).where(Snapshot.id == snapshot_id)).mappings().one()
    corrections = (
        connection.execute(select(SnapshotCorrection.__table__).where(SnapshotCorrection.snapshot_id == snapshot_id))
        .mappings()
        .all()
    )
    ignore = {"id", "snapshot_id", "received_at"}
    return {k: v for k, v in snapshot.items() if k not in ignore}, [
        {k: v for k, v in c.items() if k not in ignore} for c in corrections
    ]


def test_rows_stored_through_the_driver_read_back_as_rows_stored_through_core(db):
    engine = get_engine()
    snapshot_insert, correction_insert = service._inserts(engine.dialect)
    (core_row, core_corrections), (driver_row, driver_corrections) = _snapshot_rows(), _snapshot_rows()
    with engine.begin() as connection:
        connection.execute(insert(Snapshot), core_row)
        connection.execute(insert(SnapshotCorrection), core_corrections)
        assert len(snapshot_insert.execute(connection, [driver_row])) == 1  # RETURNING id: one row
        assert correction_insert.execute(connection, driver_corrections) == []
    with engine.connect() as connection:
        assert _stored(connection, driver_row["id"]) == _stored(connection, core_row["id"])
        stored = _stored(connection, driver_row["id"])[0]
    assert stored["duplicates_absorbed"] == 0  # Core's Python default, filled in
    assert stored["sanitizer_rules"] == driver_row["sanitizer_rules"]  # JSON, not its repr
    assert stored["spectral"] == driver_row["spectral"]


def test_a_taken_id_returns_no_row_and_changes_nothing(db):
    engine = get_engine()
    snapshot_insert, _ = service._inserts(engine.dialect)
    row, _ = _snapshot_rows()
    with engine.begin() as connection:
        assert len(snapshot_insert.execute(connection, [row])) == 1
    with engine.begin() as connection:
        assert snapshot_insert.execute(connection, [{**row, "bpm": 60.0}]) == []
        assert connection.scalar(select(Snapshot.bpm).where(Snapshot.id == row["id"])) == row["bpm"]


def test_a_callable_python_default_is_refused_rather_than_left_out(db):
    from sqlalchemy import Column, Integer, MetaData, Table

    table = Table("t", MetaData(), Column("a", Integer, primary_key=True), Column("b", Integer, default=lambda: 1))
    with pytest.raises(ValueError, match="b: only scalar"):
        DriverInsert(insert(table), get_engine().dialect, ["a"])


@pytest.mark.postgres
def test_a_lost_connection_raises_sqlalchemys_error_and_is_replaced(postgres_url, configure):
    """As with Core: OperationalError (which the API answers with 503, and Studio retries), the
    connection invalidated, and the next transaction gets a working one."""
    configure(DATABASE_URL=postgres_url)
    engine = get_engine()
    snapshot_insert, _ = service._inserts(engine.dialect)
    row, _ = _snapshot_rows()
    with engine.connect() as connection:
        pid = connection.scalar(text("SELECT pg_backend_pid()"))
        connection.rollback()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(exc.OperationalError) as raised, connection.begin():
            snapshot_insert.execute(connection, [row])
        assert raised.value.connection_invalidated
        with connection.begin():  # the Connection reconnects, as after Core's own errors
            assert len(snapshot_insert.execute(connection, [row])) == 1
            assert connection.scalar(text("SELECT pg_backend_pid()")) != pid
