"""A stream of posts from a Studio-like client, 50 a second from one address under the default
rate limit, while Postgres is unreachable for 10 s mid-stream (every connection dropped, new
ones refused, as in a restart): afterwards every snapshot is stored with all its corrections and
nothing was dropped, refused or quarantined. (Each id is stored at most once by the table's key;
what an outage can do is lose a snapshot, or store it without its corrections.) Real uvicorn,
real Postgres."""

import asyncio
import json
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.db.engine import session_scope
from app.quarantine.models import QuarantinedItem
from app.snapshots.models import Snapshot, SnapshotCorrection
from tests.support import fixture_bytes
from tests.support.servers import TcpProxy, api_process
from tests.support.studio_client import stream_through_outage

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SNAPSHOTS = 750
SEND_EVERY_S = 0.02  # 50 a second
OUTAGE_AFTER_S = 3.0
OUTAGE_FOR_S = 10.0


@pytest.fixture
def postgres_db(configure, postgres_url):
    configure(DATABASE_URL=postgres_url)
    from sqlalchemy import delete

    with session_scope() as session:
        session.execute(delete(Snapshot))
        session.execute(delete(QuarantinedItem))
    return postgres_url


def test_postgres_outage_mid_stream_loses_nothing(postgres_db, tmp_path):
    template = json.loads(fixture_bytes("snapshot-with-corrections-and-nan"))
    bodies = {}
    for _ in range(SNAPSHOTS):
        snapshot_id = str(uuid.uuid4())
        bodies[snapshot_id] = json.dumps({**template, "id": snapshot_id}).encode()

    url = make_url(postgres_db)
    with TcpProxy(target_port=url.port or 5432) as proxy:
        via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        env = {"DATABASE_URL": via_proxy}  # the default rate limit: 50/s, bursts of 200
        with api_process(env, log_path=tmp_path / "api.log") as base_url:
            exporter = asyncio.run(
                stream_through_outage(
                    f"{base_url}/stem-separation",
                    bodies,
                    proxy,
                    every_s=SEND_EVERY_S,
                    after_s=OUTAGE_AFTER_S,
                    outage_s=OUTAGE_FOR_S,
                )
            )

    longest = max(exporter.latencies_s)
    print("answers seen by the client:", dict(exporter.statuses), f"longest wait {longest:.1f} s")
    assert exporter.dropped == []
    assert exporter.delivered == set(bodies)
    assert longest > OUTAGE_FOR_S / 2, f"the outage was not felt: the longest answer took {longest:.1f} s"
    assert set(exporter.statuses) <= {200, 201}, (exporter.statuses, exporter.errors)
    with session_scope() as session:
        stored = session.scalars(select(Snapshot.id)).all()
        assert sorted(str(i) for i in stored) == sorted(bodies)
        corrections = session.execute(
            select(SnapshotCorrection.snapshot_id, func.count()).group_by(SnapshotCorrection.snapshot_id)
        )
        assert dict(corrections.all()) == {i: len(template["userCorrections"]) for i in stored}
        assert session.scalar(select(func.count()).select_from(QuarantinedItem)) == 0
