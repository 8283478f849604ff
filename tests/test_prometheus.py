"""/metrics: each ingest outcome counted, with bounded labels, behind an operator token."""

import json

from prometheus_client.parser import text_string_to_metric_families

from app.auth.service import create_token
from app.db.engine import session_scope
from tests.support import FETCH_HEADERS, fixture_snapshot


def samples(client, token: str) -> dict[tuple, float]:
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def ingest(outcome: str, reason: str = "", channel: str = "stem-separation") -> tuple:
    labels = {"channel": channel, "outcome": outcome, "reason": reason}
    return ("fabric_ingest_snapshots_total", tuple(sorted(labels.items())))


def test_each_ingest_outcome_is_counted(client, db):
    with session_scope() as session:
        token, _ = create_token("prometheus", "operator", db_session=session)
    assert client.get("/metrics").status_code == 401
    before = samples(client, token)

    stored = fixture_snapshot()
    conflicting = {**stored, "metadata": {**stored["metadata"], "confidence": 0.123}}  # same id, other content
    invalid = fixture_snapshot(metadata={"classification": "full", "confidence": 7})
    answers = [
        client.post("/stem-separation", content=json.dumps(body), headers=FETCH_HEADERS).status_code
        for body in (stored, stored, conflicting, invalid)
    ]
    answers.append(client.post("/stem-separation", content=b"{oops", headers=FETCH_HEADERS).status_code)
    answers.append(client.post("/ingest/not-a-channel", content=b"{}", headers={"Content-Type": "application/json"}).status_code)
    assert answers == [201, 200, 409, 422, 400, 404]

    after = samples(client, token)
    grew = {key: after[key] - before.get(key, 0.0) for key in after if key[0] == "fabric_ingest_snapshots_total"}
    assert grew[ingest("stored")] == 1
    assert grew[ingest("duplicate")] == 1
    assert sum(v for key, v in grew.items() if ("outcome", "conflict") in key[1]) == 1, grew
    assert grew[ingest("rejected", "less_than_equal")] == 1
    assert grew[ingest("refused", "malformed_json")] == 1
    assert grew[ingest("refused", "unknown_channel", channel="unknown")] == 1  # never the raw channel name
    timed = [key for key in after if key[0] == "fabric_http_request_duration_seconds_count"]
    assert any(("route", "/stem-separation") in key[1] for key in timed)
    assert not any("/ingest/not-a-channel" in str(key) for key in after)  # route templates only


def test_several_api_processes_report_one_total(configure, sqlite_url, tmp_path):
    """`fabric api --workers 2` shares a multiprocess folder: /metrics, from whichever process
    answers it, counts what both stored."""
    import httpx

    from tests.support.servers import api_process

    env = {"DATABASE_URL": sqlite_url, "FABRIC_RATE_LIMIT_PER_S": "0"}
    configure(**env)
    with session_scope() as session:
        token, _ = create_token("prometheus", "operator", db_session=session)
    with api_process(env, workers=2, log_path=tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=30) as http:
        for _ in range(8):  # new connections: the two processes share them
            with httpx.Client(base_url=base, timeout=30) as fresh:
                assert fresh.post("/stem-separation", json=fixture_snapshot(), headers=FETCH_HEADERS).status_code == 201
        stored = [samples(http, token).get(ingest("stored"), 0.0) for _ in range(4)]
    assert set(stored) == {8.0}, stored


def test_runs_quarantine_and_the_served_model_are_read_at_scrape_time(client, db):
    from app.training_runs.models import STATUSES
    from app.training_runs.schemas import RunParameters
    from app.training_runs.service import create_run

    with session_scope() as session:
        token, _ = create_token("prometheus", "operator", db_session=session)
    before = samples(client, token)
    with session_scope() as session:
        create_run(RunParameters(run_label="queued"), db_session=session)
    client.post("/stem-separation", content=b"{oops", headers=FETCH_HEADERS)
    client.post("/stem-separation", content=b"{oops", headers=FETCH_HEADERS)  # the same rejection again
    seen = samples(client, token)
    runs = {status: ("fabric_training_runs", (("status", status),)) for status in STATUSES}
    assert all(key in seen for key in runs.values())  # every status, zero or not
    assert seen[runs["queued"]] == before[runs["queued"]] + 1
    assert seen[("fabric_quarantine_rows", ())] >= 1
    assert seen[("fabric_quarantine_rejections_total", ())] == before[("fabric_quarantine_rejections_total", ())] + 2
