"""Hand-made hostile requests: each gets a precise 4xx (never a 5xx), nothing hostile is
stored as a snapshot, and what was rejected is kept, redacted, in quarantine."""

import gzip
import json

import pytest
from sqlalchemy import func, select, text

from app.db.engine import session_scope
from app.quarantine.models import QuarantinedItem
from app.snapshots.models import Snapshot
from tests.support import FETCH_HEADERS, fixture_snapshot


def post(client, body: bytes, **headers):
    return client.post("/stem-separation", content=body, headers={**FETCH_HEADERS, **headers})


def stored_snapshots() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Snapshot))


def last_quarantined() -> QuarantinedItem:
    with session_scope() as session:
        return session.scalars(select(QuarantinedItem).order_by(QuarantinedItem.id.desc())).first()


# body, the answer's status, the quarantine reason and the status it records. A batch answers
# 207 with each item's own status (a batch of junk: three 422s).
HOSTILE_BODIES = {
    "deep nesting beyond the parser": (b"[" * 100_000 + b"]" * 100_000, 400, "malformed_json"),
    "deep nesting the parser takes": (b'{"id": ' + b"[" * 500 + b"]" * 500 + b"}", 422, "uuid_type"),
    "number overflowing a double": (b'{"timestamp": 1e999}', 400, "malformed_json"),
    "integer beyond 64 bits": (b'{"timestamp": 123456789012345678901234567890123}', 422, "missing"),
    "invalid UTF-8": (b'{"id": "\xff\xfe\xfa"}', 400, "malformed_json"),
    "raw NUL bytes": (b'{"id": "\x00\x00"}', 400, "malformed_json"),
    "escaped NUL": (b'{"id": "\\u0000", "metadata": {"classification": "\\u0000"}}', 422, "uuid_parsing"),
    "NaN literal": (b'{"timestamp": NaN}', 400, "malformed_json"),
    "bare string": (b'"snapshot"', 422, "model_type"),
    "null": (b"null", 422, "model_type"),
    "empty array": (b"[]", 400, "empty_batch"),
    "whitespace": (b"   \n ", 400, "empty_body"),
    "array of junk": (b"[1, true, null]", 207, "model_type", 422),
    "trailing garbage": (b'{"id": 1} xyz', 400, "malformed_json"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
def test_hostile_body_gets_precise_4xx_and_is_quarantined(client, case):
    body, status, reason, *item_status = HOSTILE_BODIES[case]
    response = post(client, body)
    assert response.status_code == status, response.text
    if status == 207:
        assert [(r["status"], r["httpStatus"]) for r in response.json()["results"]] == [("rejected", *item_status)] * 3
    assert stored_snapshots() == 0
    item = last_quarantined()
    assert item is not None and item.reason_type == reason
    assert item.http_status == (item_status or [status])[0]


def test_gzip_bomb_is_413_without_inflating_it_all(client):
    bomb = gzip.compress(b"0" * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB -> ~64 KB
    assert len(bomb) < 200_000
    response = post(client, bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "inflates past" in response.json()["detail"]
    item = last_quarantined()
    assert item.reason_type == "decoded_body_too_large" and item.body_truncated


def test_corrupt_and_truncated_gzip_are_400(client):
    assert post(client, b"not gzip at all", **{"Content-Encoding": "gzip"}).status_code == 400
    truncated = gzip.compress(json.dumps(fixture_snapshot()).encode())[:-20]
    response = post(client, truncated, **{"Content-Encoding": "gzip"})
    assert response.status_code == 400 and "truncated" in response.json()["detail"]


def test_huge_string_is_422(client):
    snapshot = fixture_snapshot()
    snapshot["metadata"]["classification"] = "a" * 1_000_000
    response = post(client, json.dumps(snapshot).encode())
    assert response.status_code == 422
    assert response.json()["results"][0]["reasons"][0]["loc"] == "metadata.classification"


def test_raw_audio_is_rejected_not_truncated(client):
    snapshot = fixture_snapshot()
    snapshot["groundTruthStems"]["vocals"] = [0.001 * (i % 200) for i in range(48_000)]  # 1 s of audio
    response = post(client, json.dumps(snapshot).encode())
    assert response.status_code == 422
    assert response.json()["results"][0]["reasons"][0]["type"] == "too_long"
    assert stored_snapshots() == 0


def test_pii_never_reaches_the_database_in_any_table(client, db):
    secrets = ["jane.doe@example.com", "/Users/jane/Music/demo.wav", "https://tracks.example.com/42"]
    stored = fixture_snapshot()
    stored["metadata"]["classification"] = secrets[0]
    stored["trackName"] = secrets[1]  # not in the contract: dropped
    rejected = fixture_snapshot()
    rejected["metadata"]["classification"] = secrets[2]
    rejected["musicalContext"]["key"] = "H"  # rejected, so quarantined whole
    assert post(client, json.dumps(stored).encode()).status_code == 201
    assert post(client, json.dumps(rejected).encode()).status_code == 422
    assert post(client, f'{{"broken": "{secrets[1]}"'.encode()).status_code == 400

    with session_scope() as session:
        for table in ("snapshots", "snapshot_corrections", "quarantine"):
            rows = session.execute(text(f"SELECT * FROM {table}")).all()
            dump = repr(rows)
            for secret in secrets:
                assert secret not in dump, f"{secret!r} reached table {table}"
                assert secret.encode() not in dump.encode()
    assert "jane" not in last_quarantined().body_excerpt


def test_every_array_over_its_limit_is_rejected(client):
    for stream, limit in [("spectral", 1000), ("temporal", 1000), ("stereo", 1000)]:
        snapshot = fixture_snapshot()
        snapshot["quantumFeatures"][stream] = [0.5] * (limit + 1)
        response = post(client, json.dumps(snapshot).encode())
        assert response.status_code == 422
        assert response.json()["results"][0]["reasons"][0]["loc"] == f"quantumFeatures.{stream}"


def test_a_body_cut_at_the_size_limit_is_marked_truncated(configure, sqlite_url, tmp_path):
    """A 40 MB body through the real server: refused at the limit, and its quarantine row says
    that what was kept is not the whole body (it was marked whole when the cut came early)."""
    import httpx

    from tests.support.servers import api_process

    env = {"DATABASE_URL": sqlite_url, "FABRIC_RATE_LIMIT_PER_S": "0"}
    configure(**env)
    with api_process(env, log_path=tmp_path / "api.log") as base:
        answer = httpx.post(
            f"{base}/stem-separation", content=b"[" + b"1," * (20 * 1024 * 1024) + b"1]", headers=FETCH_HEADERS, timeout=60
        )
    assert answer.status_code == 413
    with session_scope() as session:
        row = session.get(QuarantinedItem, answer.json()["quarantineId"])
        assert row.reason_type == "body_too_large" and row.body_size >= 40 * 1024 * 1024
        assert row.body_truncated and len(row.body_excerpt) <= 256 * 1024


def test_a_client_that_leaves_mid_body_costs_one_log_line(configure, sqlite_url, tmp_path):
    import socket
    import time

    from tests.support.servers import api_process

    env = {"DATABASE_URL": sqlite_url, "FABRIC_RATE_LIMIT_PER_S": "0"}
    configure(**env)
    log_path = tmp_path / "api.log"
    with api_process(env, log_path=log_path) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as connection:
            connection.sendall(
                b"POST /stem-separation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'X-Prime-Fabric-Channel: stem-separation\r\nContent-Length: 100000\r\n\r\n{"id": '
            )
            time.sleep(0.3)
        time.sleep(0.5)
    log = log_path.read_text()
    assert "Traceback" not in log, log
    assert log.count("went away after") == 1, log


PERSONAL = [
    "Jane Doe",
    "+1 (555) 867-5309",
    "12 Main Street, Springfield",
    "Bohemian Rhapsody (Remastered)",
    "jane.doe@example.com",
    "Rue de Rivoli 5, Paris",
    "555-0199",
    "Dr. Jane Q. Public",
]


def test_quarantine_keeps_no_free_text_in_any_string_position(client):
    """A rejected snapshot with personal data in every string position, known fields, unknown
    fields, keys and nested arrays: the quarantine keeps its structure, keys and numbers, the
    contract's own words, and for every other string a marker with its length."""
    snapshot = fixture_snapshot()
    snapshot["metadata"]["classification"] = PERSONAL[0]
    snapshot["musicalContext"]["key"] = PERSONAL[1]  # not a key: the snapshot is rejected
    snapshot["musicalContext"]["mode"] = PERSONAL[2]
    snapshot["artist"] = PERSONAL[3]
    snapshot["notes"] = [[PERSONAL[4], 1.5], {"where": PERSONAL[5]}]
    snapshot[PERSONAL[6]] = 3
    snapshot["quantumFeatures"]["spectral"][:2] = [PERSONAL[7], 0.25]
    snapshot["userCorrections"] = [{"correctedStem": "vocals", "correctionType": "boost", "strength": 0.5, "by": PERSONAL[0]}]
    assert post(client, json.dumps(snapshot).encode()).status_code == 422
    excerpt = last_quarantined().body_excerpt
    kept = json.loads(excerpt)  # still JSON: the structure is there for diagnosis
    for secret in PERSONAL:
        for word in secret.replace(",", " ").split():
            if len(word) > 3:
                assert word not in excerpt, (word, excerpt[:300])
    assert kept["metadata"]["classification"] == f"<text:{len(PERSONAL[0])}>"
    assert kept["musicalContext"]["key"] == f"<text:{len(PERSONAL[1])}>"
    assert kept["notes"] == [[f"<text:{len(PERSONAL[4])}>", 1.5], {"where": f"<text:{len(PERSONAL[5])}>"}]
    assert kept["userCorrections"][0]["correctedStem"] == "vocals" and kept["userCorrections"][0]["strength"] == 0.5
    assert kept["quantumFeatures"]["spectral"][1] == 0.25 and kept["metadata"]["confidence"] == snapshot["metadata"]["confidence"]
    assert kept["id"] == snapshot["id"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"classification": "Jane Doe", "phone": "+1 (555) 867-5309"',  # cut off
        b'Jane Doe lives at 12 Main Street {"oops": true}',  # not JSON at all
        gzip.compress(b'[{"title": "Bohemian Rhapsody (Remastered)", "by": "Jane Doe"}, oops]'),
    ],
)
def test_malformed_bodies_keep_no_free_text_either(client, body):
    headers = {"Content-Encoding": "gzip"} if body[:2] == b"\x1f\x8b" else {}
    assert post(client, body, **headers).status_code == 400
    excerpt = last_quarantined().body_excerpt
    for word in ("Jane", "Main", "Street", "Bohemian", "Rhapsody", "lives"):
        assert word not in excerpt, excerpt
    assert "<text:" in excerpt


def test_six_amplified_bodies_at_once_are_refused_within_bounded_memory(configure, sqlite_url, tmp_path):
    """Six ~16 KB gzip bodies, each inflating to a 16 MiB array of zeros, sent at once to a real
    server: each is a 413 for its number of values, and the process grows by under 50 MB."""
    import httpx

    from tests.support import amplified_gzip_body
    from tests.support.servers import api_process, api_processes, peak_rss_during, post_at_once

    env = {"DATABASE_URL": sqlite_url, "FABRIC_RATE_LIMIT_PER_S": "0"}
    configure(**env)
    with api_process(env, log_path=tmp_path / "api.log") as base:
        [server] = api_processes(base)
        warm_up = httpx.post(f"{base}/stem-separation", json=fixture_snapshot(), headers=FETCH_HEADERS, timeout=30)
        assert warm_up.status_code == 201
        headers = {**FETCH_HEADERS, "Content-Encoding": "gzip"}
        body = amplified_gzip_body()
        answers, before, peak = peak_rss_during(server, lambda: post_at_once(f"{base}/stem-separation", body, headers, 6))
    print(
        f"RSS {before / 2**20:.0f} MiB -> peak {peak / 2**20:.0f} MiB;",
        "answers in",
        sorted(round(a.elapsed.total_seconds() * 1000) for a in answers),
        "ms",
    )
    assert [a.status_code for a in answers] == [413] * 6
    assert {a.json()["detail"] for a in answers} == {"the body holds more than 1500000 JSON values"}
    assert peak - before < 50 * 2**20


def test_the_scrub_keeps_numbers_and_drops_words_next_to_them():
    from app.privacy import without_free_text

    text = '{"n": [1e5, -2.5E-3, 2pac, 5 Eve], bare Rue 5, "title": "Jane"}'
    assert without_free_text(text) == '{"n": [1e5, -2.5E-3, 2<text:3>, 5 <text:3>], <text:4> <text:3> 5, "title": "<text:4>"}'
    nested = "[" * 100_000 + "]" * 100_000  # no backtracking over runs of brackets
    assert without_free_text(nested) == nested
