"""A stream of posts from a Studio-like client while Postgres becomes unreachable mid-stream
(every connection dropped, new ones refused, as in a restart): afterwards every snapshot is
stored exactly once and nothing was dropped or quarantined. Real uvicorn, real Postgres."""

import asyncio
import json
import uuid

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.database import session_scope
from app.quarantine.models import QuarantinedItem
from app.snapshots.models import Snapshot
from tests.conftest import fixture_bytes
from tests.servers import TcpProxy, api_process
from tests.studio_client import StudioExporter

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SNAPSHOTS = 100
SEND_EVERY_S = 0.1
OUTAGE_AFTER_S = 3.0
OUTAGE_FOR_S = 3.0


@pytest.fixture
def postgres_db(configure, postgres_url):
    configure(DATABASE_URL=postgres_url)
    from sqlalchemy import delete

    with session_scope() as session:
        session.execute(delete(Snapshot))
        session.execute(delete(QuarantinedItem))
    return postgres_url


def test_postgres_outage_mid_stream_loses_nothing_and_duplicates_nothing(postgres_db, tmp_path):
    template = json.loads(fixture_bytes("snapshot-with-corrections-and-nan"))
    bodies = {}
    for _ in range(SNAPSHOTS):
        snapshot_id = str(uuid.uuid4())
        bodies[snapshot_id] = json.dumps({**template, "id": snapshot_id}).encode()

    url = make_url(postgres_db)
    with TcpProxy(target_port=url.port or 5432) as proxy:
        via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        env = {"DATABASE_URL": via_proxy, "FABRIC_RATE_LIMIT_PER_S": "0"}
        with api_process(env, log_path=tmp_path / "api.log") as base_url:
            exporter = asyncio.run(_stream(f"{base_url}/stem-separation", bodies, proxy))

    print("answers seen by the client:", dict(exporter.statuses))
    assert exporter.dropped == []
    assert exporter.delivered == set(bodies)
    assert exporter.statuses[503] > 0, f"the outage was not felt: {exporter.statuses}"
    assert set(exporter.statuses) <= {200, 201, 503}, exporter.statuses
    with session_scope() as session:
        stored = session.scalars(select(Snapshot.id)).all()
        assert sorted(str(i) for i in stored) == sorted(bodies)
        assert session.scalar(select(func.count()).select_from(QuarantinedItem)) == 0


async def _stream(url: str, bodies: dict[str, bytes], proxy: TcpProxy) -> StudioExporter:
    async with httpx.AsyncClient(timeout=10) as client:
        exporter = StudioExporter(url, client)

        async def outage() -> None:
            await asyncio.sleep(OUTAGE_AFTER_S)
            proxy.block()
            await asyncio.sleep(OUTAGE_FOR_S)
            proxy.unblock()

        tasks = [asyncio.create_task(outage())]
        for snapshot_id, body in bodies.items():
            tasks.append(asyncio.create_task(exporter.export(snapshot_id, body)))
            await asyncio.sleep(SEND_EVERY_S)
        await asyncio.gather(*tasks)
    return exporter
