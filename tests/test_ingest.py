"""The ingest endpoint, on SQLite and the real Postgres: what Studio sends is stored once,
what is wrong is answered precisely and kept in quarantine."""

import gzip
import json
import uuid

import numpy as np
import pytest
from sqlalchemy import func, select, text

from app.config import get_settings
from app.db.engine import get_engine, session_scope
from app.quarantine.models import QuarantinedItem
from app.snapshots import arrays
from app.snapshots.models import Snapshot, SnapshotCorrection
from tests.support import BEACON_HEADERS, FETCH_HEADERS, FIXTURE_NAMES, STUDIO_ORIGIN, fixture_bytes, fixture_snapshot
from training.contract import FEATURE_STREAMS, STEMS


def snapshot_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Snapshot))


def quarantined() -> list[QuarantinedItem]:
    with session_scope() as session:
        return list(session.scalars(select(QuarantinedItem).order_by(QuarantinedItem.id)))


def as_float32(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_sent_by_fetch_is_stored_with_its_arrays_intact(client, name):
    body = fixture_bytes(name)
    sent = json.loads(body)

    response = client.post("/stem-separation", content=body, headers=FETCH_HEADERS)

    assert response.status_code == 201, response.text
    result = response.json()["results"][0]
    assert result["status"] == "stored" and result["id"] == sent["id"]
    with session_scope() as session:
        row = session.get(Snapshot, uuid.UUID(sent["id"]))
        for stream in FEATURE_STREAMS:
            np.testing.assert_array_equal(arrays.unpack(getattr(row, stream)), as_float32(sent["quantumFeatures"][stream]))
        truth = sent.get("groundTruthStems") or {}
        for stem in STEMS:
            blob = getattr(row, f"gt_{stem}")
            if stem in truth:
                np.testing.assert_array_equal(arrays.unpack(blob), as_float32(truth[stem]))
            else:
                assert blob is None
        assert row.has_ground_truth == bool(truth)
        assert row.channel == "stem-separation" and row.origin == STUDIO_ORIGIN
        assert row.key == sent["musicalContext"]["key"] and row.bpm == sent["musicalContext"]["bpm"]
        transients = sent["musicalContext"]["transients"]
        assert row.transient_count == len(transients)
        assert row.transient_density == pytest.approx(len(transients) / sent["originalAudio"]["duration"])
        nulls = sum(v is None for s in sent["quantumFeatures"].values() for v in s)
        nulls += sum(v is None for s in truth.values() for v in s)
        assert row.null_count == nulls
        corrections = session.scalars(select(SnapshotCorrection).where(SnapshotCorrection.snapshot_id == row.id)).all()
        assert [(c.stem, c.correction_type) for c in corrections] == [
            (c["correctedStem"], c["correctionType"]) for c in sent.get("userCorrections") or []
        ]
    assert quarantined() == []


def test_nulls_are_stored_as_nan_and_reported(client):
    response = client.post("/stem-separation", content=fixture_bytes("snapshot-with-corrections-and-nan"), headers=FETCH_HEADERS)
    rules = response.json()["results"][0]["rulesFired"]
    assert rules["null_values.temporal"] == 5
    assert rules["null_values.harmonic"] == 5
    assert rules["null_values.gt_vocals"] == 1


def test_beacon_flush_is_accepted_without_channel_header(client):
    """navigator.sendBeacon: text/plain;charset=UTF-8, no custom header, no preflight."""
    snapshot = fixture_snapshot("snapshot-mono-no-ground-truth")
    response = client.post("/stem-separation", content=json.dumps(snapshot), headers=BEACON_HEADERS)
    assert response.status_code == 201, response.text
    assert snapshot_count() == 1


def test_cors_preflight_allows_studio_origin_method_and_headers(client):
    response = client.options(
        "/stem-separation",
        headers={
            "Origin": STUDIO_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-prime-fabric-channel",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == STUDIO_ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "x-prime-fabric-channel" in allowed and "content-type" in allowed


def test_cors_preflight_refuses_other_origins(client):
    response = client.options(
        "/stem-separation",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_posts_carry_cors_headers_even_when_rejected(client):
    response = client.post("/stem-separation", content=b"{", headers=FETCH_HEADERS)
    assert response.status_code == 400
    assert response.headers["access-control-allow-origin"] == STUDIO_ORIGIN


def test_gzip_body_is_accepted(client):
    snapshot = fixture_snapshot()
    response = client.post(
        "/stem-separation",
        content=gzip.compress(json.dumps(snapshot).encode()),
        headers={**BEACON_HEADERS, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 201, response.text
    assert snapshot_count() == 1


def test_channel_may_come_from_path_or_header(client):
    by_path = client.post("/ingest/stem-separation", json=fixture_snapshot(), headers={"Origin": STUDIO_ORIGIN})
    by_header = client.post("/ingest", json=fixture_snapshot(), headers=FETCH_HEADERS)
    assert (by_path.status_code, by_header.status_code) == (201, 201)


def test_unknown_or_missing_channel_names_the_channels_that_exist(client):
    unknown = client.post("/ingest/karaoke", json=fixture_snapshot())
    assert unknown.status_code == 404
    assert "karaoke" in unknown.json()["detail"] and "stem-separation" in unknown.json()["detail"]
    header = client.post("/ingest", json=fixture_snapshot(), headers={"X-Prime-Fabric-Channel": "karaoke"})
    assert header.status_code == 404
    missing = client.post("/ingest", json=fixture_snapshot())
    assert missing.status_code == 400 and "stem-separation" in missing.json()["detail"]
    mismatch = client.post("/stem-separation", json=fixture_snapshot(), headers={"X-Prime-Fabric-Channel": "other"})
    assert mismatch.status_code == 400
    assert snapshot_count() == 0
    assert {q.reason_type for q in quarantined()} == {"unknown_channel", "missing_channel", "channel_mismatch"}


def test_retry_of_the_same_snapshot_is_a_duplicate_not_a_second_row(client):
    body = json.dumps(fixture_snapshot())
    answers = [client.post("/stem-separation", content=body, headers=FETCH_HEADERS) for _ in range(5)]
    assert [a.status_code for a in answers] == [201, 200, 200, 200, 200]
    assert [a.json()["results"][0]["status"] for a in answers[1:]] == ["duplicate"] * 4
    assert snapshot_count() == 1
    with session_scope() as session:
        assert session.scalar(select(Snapshot.duplicates_absorbed)) == 4


def test_same_id_with_other_content_is_409_and_kept_for_review(client):
    snapshot = fixture_snapshot()
    assert client.post("/stem-separation", json=snapshot, headers=FETCH_HEADERS).status_code == 201
    changed = {**snapshot, "metadata": {**snapshot["metadata"], "confidence": 0.01}}

    response = client.post("/stem-separation", json=changed, headers=FETCH_HEADERS)

    assert response.status_code == 409
    result = response.json()["results"][0]
    assert result["status"] == "conflict" and result["reasons"][0]["type"] == "id_conflict"
    assert snapshot_count() == 1
    [item] = quarantined()
    assert item.id == result["quarantineId"] and item.snapshot_id == snapshot["id"] and item.http_status == 409
    assert json.loads(item.body_excerpt)["metadata"]["confidence"] == 0.01  # the whole snapshot is kept


def test_batch_as_json_array_answers_per_snapshot(client):
    good, bad = fixture_snapshot(), fixture_snapshot()
    bad["musicalContext"]["key"] = "H"
    response = client.post("/stem-separation", json=[good, bad, good], headers=FETCH_HEADERS)
    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["stored", "rejected", "duplicate"]
    assert [r["httpStatus"] for r in results] == [201, 422, 200]
    assert results[1]["reasons"][0]["loc"] == "musicalContext.key"
    assert snapshot_count() == 1
    [item] = quarantined()
    assert item.item_index == 1 and item.snapshot_id == bad["id"]


def test_batch_as_ndjson_in_a_beacon(client):
    lines = "\n".join(json.dumps(fixture_snapshot()) for _ in range(3)) + "\n"
    response = client.post("/stem-separation", content=lines, headers=BEACON_HEADERS)
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["stored"] * 3
    assert snapshot_count() == 3


def test_too_many_snapshots_in_one_request_is_413(client, configure, db):
    configure(FABRIC_MAX_SNAPSHOTS_PER_REQUEST="2")
    from fastapi.testclient import TestClient

    from app.main import create_app

    response = TestClient(create_app()).post("/stem-separation", json=[fixture_snapshot() for _ in range(3)])
    assert response.status_code == 413 and "at most 2" in response.json()["detail"]
    assert snapshot_count() == 0
    assert quarantined()[0].reason_type == "too_many_snapshots"


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({"Content-Type": "application/xml"}, 415, "unsupported_media_type"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415, "unsupported_media_type"),
        ({}, 415, "unsupported_media_type"),
        ({"Content-Type": "application/json; charset=latin-1"}, 415, "unsupported_charset"),
        ({"Content-Type": "application/json", "Content-Encoding": "br"}, 415, "unsupported_content_encoding"),
    ],
)
def test_wrong_content_type_or_encoding_is_415_and_quarantined(client, headers, status, reason):
    response = client.post("/stem-separation", content=json.dumps(fixture_snapshot()), headers=headers)
    assert response.status_code == status
    assert response.json()["quarantineId"] == quarantined()[0].id
    assert quarantined()[0].reason_type == reason
    assert snapshot_count() == 0


def test_validation_failure_is_422_with_field_level_reasons(client):
    snapshot = fixture_snapshot()
    snapshot["originalAudio"]["sampleRate"] = 12
    snapshot["metadata"]["confidence"] = 1.5
    snapshot["musicalContext"]["mode"] = "dorian"
    snapshot["quantumFeatures"]["energy"] = [1.0, 2.0]
    response = client.post("/stem-separation", json=snapshot, headers=FETCH_HEADERS)
    assert response.status_code == 422
    reasons = {r["loc"]: r["type"] for r in response.json()["results"][0]["reasons"]}
    assert reasons["originalAudio.sampleRate"] == "greater_than_equal"
    assert reasons["metadata.confidence"] == "less_than_equal"
    assert reasons["musicalContext.mode"] == "literal_error"
    assert "quantumFeatures" in reasons
    [item] = quarantined()
    assert item.reason_type == "greater_than_equal" and len(item.reasons) == len(reasons)


def test_rejected_request_sent_again_is_counted_not_duplicated_in_quarantine(client):
    body = b'{"id": "not json'
    for _ in range(5):  # Studio retries a 4xx up to 5 times
        assert client.post("/stem-separation", content=body, headers=FETCH_HEADERS).status_code == 400
    [item] = quarantined()
    assert item.occurrences == 5


def test_rate_limit_answers_429_with_retry_after(configure, db):
    configure(FABRIC_RATE_LIMIT_PER_S="1", FABRIC_RATE_LIMIT_BURST="3")
    from fastapi.testclient import TestClient

    from app.main import create_app

    client = TestClient(create_app())
    codes = [client.post("/stem-separation", json=fixture_snapshot(), headers=FETCH_HEADERS).status_code for _ in range(5)]
    assert codes[:3] == [201, 201, 201]
    assert codes[3:] == [429, 429]
    limited = client.post("/stem-separation", json=fixture_snapshot(), headers=FETCH_HEADERS)
    assert int(limited.headers["retry-after"]) >= 1
    assert client.get("/healthz").status_code == 200  # health checks are never limited


def test_duplicates_and_503s_give_their_token_back(configure, db, monkeypatch):
    """Studio retries what was answered 503 and what it never heard back about: after an
    outage those retries must not use up the bucket its new snapshots need."""
    configure(FABRIC_RATE_LIMIT_PER_S="0.001", FABRIC_RATE_LIMIT_BURST="3")
    from fastapi.testclient import TestClient
    from sqlalchemy import exc

    from app.main import create_app
    from app.snapshots import service
    from app.snapshots.writer import IngestWriter

    client = TestClient(create_app())
    stored = fixture_snapshot()
    assert client.post("/stem-separation", json=stored, headers=FETCH_HEADERS).status_code == 201
    for _ in range(10):  # sent again and again: a duplicate each time, never charged
        assert client.post("/stem-separation", json=stored, headers=FETCH_HEADERS).status_code == 200

    def unreachable(*_args):
        raise exc.OperationalError("INSERT", {}, Exception("connection refused"))

    configure(FABRIC_INGEST_DATABASE_WAIT_S="0")
    client = TestClient(create_app())
    monkeypatch.setattr(IngestWriter, "OUTAGE_RETRY_S", 0.001)  # the next request finds the database back
    with monkeypatch.context() as patched:
        patched.setattr(service, "store_request", unreachable)
        for _ in range(10):
            assert client.post("/stem-separation", json=fixture_snapshot(), headers=FETCH_HEADERS).status_code == 503
    # The app's bucket still holds its burst, less the one new snapshot stored.
    codes = [client.post("/stem-separation", json=fixture_snapshot(), headers=FETCH_HEADERS).status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]


def test_oversized_body_is_413_and_a_bounded_prefix_is_kept(configure, db):
    configure(FABRIC_MAX_BODY_BYTES="200000", FABRIC_QUARANTINE_BODY_MAX_BYTES="1000")
    from fastapi.testclient import TestClient

    from app.main import create_app

    body = b"[" + b",".join([json.dumps(fixture_snapshot()).encode()] * 3) + b"]"
    response = TestClient(create_app()).post("/stem-separation", content=body, headers=FETCH_HEADERS)
    assert response.status_code == 413
    [item] = quarantined()
    assert item.reason_type == "body_too_large" and item.body_truncated
    assert len(item.body_excerpt) <= 1000 and item.body_size > 200000


def _post_concurrently(bodies: list[str]) -> list[int]:
    import asyncio

    import httpx

    from app.main import create_app

    async def post_all() -> list[int]:
        transport = httpx.ASGITransport(app=create_app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://fabric") as client:
            posts = [client.post("/stem-separation", content=body, headers=FETCH_HEADERS) for body in bodies]
            return [answer.status_code for answer in await asyncio.gather(*posts)]

    return asyncio.run(post_all())


def test_requests_waiting_for_the_database_share_a_transaction_and_each_lands(db, monkeypatch):
    import time

    from app.snapshots import service, views

    store = service.store_request

    def slow_store(*args):
        time.sleep(0.05)  # a slow database: the other requests pile up behind it
        return store(*args)

    monkeypatch.setattr(service, "store_request", slow_store)
    settings = get_settings()
    writer = views._writer(settings.ingest_batch_max, settings.ingest_database_wait_s, settings.ingest_max_waiting)
    before = writer.group_commits
    ids = [str(uuid.uuid4()) for _ in range(8)]
    assert _post_concurrently([json.dumps(fixture_snapshot(id=i)) for i in ids]) == [201] * len(ids)
    assert writer.group_commits > before, "no two requests shared a transaction"
    assert snapshot_count() == len(ids)
    if db.startswith("postgresql"):  # rows written by one transaction carry its id
        with session_scope() as session:
            assert session.scalar(text("SELECT count(DISTINCT xmin::text) FROM snapshots")) < len(ids)


def test_a_snapshot_is_stored_with_its_corrections_or_not_at_all(db, monkeypatch):
    """The writer's connection is in autocommit; the snapshot row must not outlive a failure
    to store its corrections, or Studio's retry would be absorbed as a duplicate and the
    corrections lost."""
    from app.snapshots import service

    snapshot_insert, correction_insert = service._inserts(get_engine().dialect)

    class FailingCorrections:
        def execute(self, connection, rows):
            correction_insert.execute(connection, rows[:1])  # some written, then the failure
            raise RuntimeError("the corrections could not be stored")

    monkeypatch.setattr(service, "_inserts", lambda dialect: (snapshot_insert, FailingCorrections()))
    body = fixture_snapshot("snapshot-with-corrections-and-nan", id=str(uuid.uuid4()))
    assert body["userCorrections"]
    assert _post_concurrently([json.dumps(body)]) == [500]
    assert snapshot_count() == 0
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(SnapshotCorrection)) == 0

    monkeypatch.undo()  # Studio retries: stored whole, not taken for a duplicate
    assert _post_concurrently([json.dumps(body)]) == [201]
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(SnapshotCorrection)) == len(body["userCorrections"])


def _unavailable_error():
    from sqlalchemy import exc

    return exc.OperationalError("INSERT", {}, Exception("server closed the connection"))


def test_requests_wait_through_a_short_outage_and_are_stored(db, monkeypatch):
    """Three requests while the database refuses the first three tries: each waits, is stored
    by the real store once it is back, and gets its 201."""
    import asyncio

    from app.quarantine.service import RequestContext
    from app.snapshots import service
    from app.snapshots.models import Snapshot
    from app.snapshots.writer import IngestWriter

    monkeypatch.setattr(IngestWriter, "OUTAGE_RETRY_S", 0.05)
    writer, calls = IngestWriter(max_batch=4, database_wait_s=5), []
    context = RequestContext(channel="stem-separation", origin=None, content_type="application/json", content_encoding=None)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    requests = [service.prepare_request(json.dumps(fixture_snapshot(id=i)).encode(), context, get_settings()) for i in ids]

    def back_on_the_fourth_try(connection, prepared):
        calls.append(prepared)
        if len(calls) < 4:
            raise _unavailable_error()
        return service.store_request(connection, prepared, get_settings())[0]

    async def three():
        return await asyncio.gather(*(writer.run(back_on_the_fourth_try, prepared) for prepared in requests))

    assert asyncio.run(three()) == [201, 201, 201]
    with session_scope() as session:
        stored = {str(i) for i in session.scalars(select(Snapshot.id).where(Snapshot.id.in_([uuid.UUID(i) for i in ids])))}
    assert stored == set(ids)


def test_requests_past_their_wait_get_the_error_without_another_try(db, monkeypatch):
    """A request waits for an unreachable database up to its deadline; those that waited in
    the queue past theirs are answered at once, not each tried in turn."""
    import asyncio
    import time

    from sqlalchemy import exc

    from app.snapshots.writer import IngestWriter

    writer, calls = IngestWriter(max_batch=1, database_wait_s=0.3), []

    def unavailable(connection):
        calls.append(1)
        time.sleep(0.1)  # long enough for the others to queue behind it
        raise _unavailable_error()

    async def five():
        return await asyncio.gather(*(writer.run(unavailable) for _ in range(5)), return_exceptions=True)

    started = time.monotonic()
    outcomes = asyncio.run(five())
    assert all(isinstance(outcome, exc.OperationalError) for outcome in outcomes)
    assert len(calls) == 1
    assert time.monotonic() - started < 2


def test_a_full_backlog_is_refused_at_once(db):
    import asyncio
    import threading

    from app.snapshots.writer import IngestBacklogFull, IngestWriter

    writer, release = IngestWriter(max_batch=1, max_waiting=2), threading.Event()

    async def four():
        tasks = [asyncio.ensure_future(writer.run(lambda connection: release.wait(10)))]
        await asyncio.sleep(0.2)  # the first is with the writer; two more fill the queue
        tasks += [asyncio.ensure_future(writer.run(lambda connection: 1)) for _ in range(2)]
        await asyncio.sleep(0.05)  # they start, and wait in the queue
        with pytest.raises(IngestBacklogFull):
            await writer.run(lambda connection: 1)
        release.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(four()) == [True, 1, 1]


def test_the_writer_keeps_its_connection_while_busy_and_hands_it_back_when_idle(db, monkeypatch):
    """Checking a connection out per request cost ~0.1 ms; one held through a pause would
    miss the pool's idle ping (a connection broken meanwhile would fail a request)."""
    import asyncio
    import time

    from app.snapshots.writer import IngestWriter

    monkeypatch.setattr(IngestWriter, "IDLE_RELEASE_S", 2.0)  # long enough not to pass by accident
    writer, pool = IngestWriter(max_batch=4), get_engine().pool
    before = pool.checkedout()

    async def two_in_a_row():
        await writer.run(lambda connection: connection.exec_driver_sql("SELECT 1"))
        await writer.run(lambda connection: connection.exec_driver_sql("SELECT 1"))

    asyncio.run(two_in_a_row())
    assert pool.checkedout() == before + 1
    deadline = time.monotonic() + 15
    while pool.checkedout() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.checkedout() == before


def test_one_failing_request_does_not_fail_those_batched_with_it(db, monkeypatch):
    import time

    from app.snapshots import service

    store, poison = service.store_request, str(uuid.uuid4())

    def store_failing_once_for_poison(connection, prepared, settings):
        time.sleep(0.02)
        if str(prepared.items[0].snapshot_id) == poison:
            raise ValueError("a bug that only this request meets")
        return store(connection, prepared, settings)

    monkeypatch.setattr(service, "store_request", store_failing_once_for_poison)
    ids = [str(uuid.uuid4()) for _ in range(5)]
    statuses = _post_concurrently([json.dumps(fixture_snapshot(id=i)) for i in [*ids, poison]])
    assert statuses == [201] * len(ids) + [500]
    with session_scope() as session:
        assert sorted(str(i) for i in session.scalars(select(Snapshot.id))) == sorted(ids)


def test_ingesting_does_not_run_a_garbage_collection_per_snapshot(client):
    """Each snapshot parses into ~1,000 objects; with Python's default threshold that ran a
    collection per request, promoting them and soon a full collection (pauses of 10-80 ms
    under load). The API raises the threshold at start-up (app.main.lifespan)."""
    import gc

    collections = []

    def count(phase, info):
        if phase == "stop":
            collections.append(info["generation"])

    bodies = [json.dumps(fixture_snapshot(name, id=str(uuid.uuid4()))) for name in FIXTURE_NAMES * 10]
    gc.callbacks.append(count)
    try:
        statuses = [client.post("/stem-separation", content=body, headers=FETCH_HEADERS).status_code for body in bodies]
    finally:
        gc.callbacks.remove(count)
    assert statuses == [201] * len(bodies)
    assert len(collections) < len(bodies) / 5, f"{len(collections)} collections for {len(bodies)} snapshots"


def test_rate_limit_buckets_stay_bounded_under_a_flood_of_addresses():
    from app.limits import RateLimitMiddleware

    limiter = RateLimitMiddleware(app=None, rate=1.0, burst=5, max_clients=100)
    for n in range(1_000):  # all within one refill: none has refilled
        assert limiter._take(f"10.0.{n // 256}.{n % 256}", now=1.0) == 0.0
    assert len(limiter.buckets) <= 100
    assert "10.0.3.231" in limiter.buckets  # the newest are kept


def test_a_compressed_beacon_of_several_snapshots_is_stored_once_each(client):
    """What the Studio kit sends on unload: one gzip member per snapshot, joined, as text/plain
    with no custom header (sendBeacon cannot set one), under the 64 KiB beacon quota (Studio's
    snapshots are 27-48 KB compressed: one or two to a beacon)."""
    snapshots = [fixture_snapshot("snapshot-mono-no-ground-truth") for _ in range(2)]
    beacon = b"".join(gzip.compress(json.dumps(s).encode() + b"\n") for s in snapshots)
    assert len(beacon) <= 64 * 1024
    response = client.post("/stem-separation", content=beacon, headers=BEACON_HEADERS)
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["stored"] * 2
    again = client.post("/stem-separation", content=beacon, headers=BEACON_HEADERS)
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 2
    assert snapshot_count() == 2
