"""Dataset statistics: the SQL aggregates agree with counts made independently in Python from
the seeded snapshots, on SQLite and on Postgres, for every filter; and only admins read them."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from app.auth.service import create_token
from app.db.engine import session_scope
from app.snapshots.models import Snapshot
from app.stats import service
from tests.support import FETCH_HEADERS, fixture_snapshot

NOW = datetime.now(UTC).replace(microsecond=0)


def _seed(client) -> list[dict]:
    """Posts a varied set through the real ingest endpoint, then places each snapshot at a known
    time and channel. Returns what was seeded, as plain facts to count from."""
    plan = [
        # fixture, hours ago, channel, changes
        ("snapshot-with-ground-truth", 0.01, "stem-separation", {}),
        ("snapshot-with-ground-truth", 1.5, "stem-separation", {}),
        ("snapshot-with-ground-truth", 30, "stem-separation", {}),
        ("snapshot-with-ground-truth", 80, "stem-separation", {}),
        ("snapshot-mono-no-ground-truth", 2.5, "stem-separation", {}),
        ("snapshot-mono-no-ground-truth", 50, "stem-separation", {"bpm": None}),
        ("snapshot-mono-no-ground-truth", 0.2, "beta", {}),
        ("snapshot-with-corrections-and-nan", 5, "stem-separation", {}),
        ("snapshot-with-corrections-and-nan", 26, "beta", {}),
    ]
    seeded = []
    for name, hours_ago, channel, changes in plan:
        snapshot = fixture_snapshot(name)
        snapshot["musicalContext"].update(changes)
        answer = client.post("/stem-separation", content=json.dumps(snapshot), headers=FETCH_HEADERS)
        assert answer.status_code in (200, 201), answer.text
        received_at = NOW - timedelta(hours=hours_ago)
        with session_scope() as session:
            session.execute(
                update(Snapshot).where(Snapshot.id == uuid.UUID(snapshot["id"])).values(received_at=received_at, channel=channel)
            )
        seeded.append({"snapshot": snapshot, "received_at": received_at, "channel": channel})
    # One retry of the first: absorbed, not stored again.
    again = client.post("/stem-separation", content=json.dumps(seeded[0]["snapshot"]), headers=FETCH_HEADERS)
    assert again.json()["results"][0]["status"] == "duplicate"
    # Rejections: one malformed body, and one invalid snapshot sent twice (one row, 2 occurrences).
    assert client.post("/stem-separation", content=b"{not json", headers=FETCH_HEADERS).status_code == 400
    invalid = fixture_snapshot("snapshot-mono-no-ground-truth")
    invalid["originalAudio"]["sampleRate"] = -1
    for _ in range(2):
        assert client.post("/stem-separation", content=json.dumps(invalid), headers=FETCH_HEADERS).status_code == 422
    return seeded


@pytest.fixture
def seeded(client):
    return _seed(client)


WINDOWS = {
    "all": service.window_for("all", now=NOW),
    "24h": service.window_for("24h", now=NOW),
    "beta": service.window_for("all", channel="beta", now=NOW),
    "days": service.window_for("all", since=NOW - timedelta(hours=60), until=NOW - timedelta(hours=3), now=NOW),
}
# Which of _seed's plan each window holds, read off the plan by hand (hours ago, channel), not
# computed with the window under test.
MEMBERS = {
    "all": [0, 1, 2, 3, 4, 5, 6, 7, 8],
    "24h": [0, 1, 4, 6, 7],  # under 24 hours ago
    "beta": [6, 8],  # the beta channel
    "days": [2, 5, 7, 8],  # between 60 and 3 hours ago
}


@pytest.mark.parametrize("name", WINDOWS)
def test_overview_counts_what_was_seeded(seeded, name):
    window = WINDOWS[name]
    chosen = [seeded[i] for i in MEMBERS[name]]
    with session_scope() as session:
        figures = service.overview(window, now=NOW, db_session=session)
    assert figures.total == len(chosen)
    assert figures.with_ground_truth == sum("groundTruthStems" in s["snapshot"] for s in chosen)
    assert figures.with_corrections == sum(bool(s["snapshot"].get("userCorrections")) for s in chosen)
    assert figures.without_labels == sum(
        "groundTruthStems" not in s["snapshot"] and not s["snapshot"].get("userCorrections") for s in chosen
    )
    assert figures.duplicates_absorbed == (1 if 0 in MEMBERS[name] else 0)
    assert sum(day.count for day in figures.per_day) == len(chosen)
    by_day = {d.label: d.count for d in figures.per_day}
    for item in chosen:
        assert by_day[item["received_at"].strftime("%Y-%m-%d")] >= 1
    labels = [d.label for d in figures.per_day]
    assert labels == sorted(labels) and len(labels) == len(set(labels))  # every day once, in order
    assert len(figures.per_hour) == 24
    hour_end = (window.until - timedelta(microseconds=1) if window.until else NOW).replace(minute=0, second=0) + timedelta(
        hours=1
    )
    last_day = [s for s in chosen if hour_end - timedelta(hours=24) <= s["received_at"] < hour_end]
    assert sum(h.count for h in figures.per_hour) == len(last_day)
    # The rate "now" ignores the range but keeps the channel.
    recent = [
        s
        for s in seeded
        if s["received_at"] >= NOW - timedelta(minutes=1) and (window.channel is None or s["channel"] == window.channel)
    ]
    assert figures.ingest_per_s_last_minute == round(len(recent) / 60, 2)


def test_rejections_are_counted_by_reason_with_retries(seeded):
    with session_scope() as session:
        figures = service.overview(WINDOWS["all"], now=NOW, db_session=session)
    reasons = {r.reason_type: (r.items, r.occurrences) for r in figures.rejected_by_reason}
    assert reasons.pop("malformed_json") == (1, 1)
    assert sum(items for items, _ in reasons.values()) == 1  # the invalid snapshot: one row...
    assert sum(times for _, times in reasons.values()) == 2  # ...seen twice
    assert figures.rejected_items == 2 and figures.rejected_occurrences == 3


@pytest.mark.parametrize("name", WINDOWS)
def test_distributions_count_what_was_seeded(seeded, name):
    window = WINDOWS[name]
    chosen = [seeded[i]["snapshot"] for i in MEMBERS[name]]
    with session_scope() as session:
        figures = service.distributions(window, db_session=session)

    def tally(values) -> dict:
        counts: dict = {}
        for value in values:
            counts[str(value)] = counts.get(str(value), 0) + 1
        return counts

    def as_dict(counts) -> dict:
        return {c.label: c.count for c in counts if c.count}

    assert figures.total == len(chosen)
    assert as_dict(figures.classification) == tally(s["metadata"]["classification"] for s in chosen)
    assert as_dict(figures.key_mode) == tally(
        f"{s['musicalContext']['key']} {s['musicalContext'].get('mode') or 'unknown'}" for s in chosen
    )
    assert as_dict(figures.sample_rate) == tally(s["originalAudio"]["sampleRate"] for s in chosen)
    assert as_dict(figures.audio_channels) == tally(s["originalAudio"]["channels"] for s in chosen)
    bpms = [s["musicalContext"]["bpm"] for s in chosen]
    expected_bpm = tally("none" if b is None else f"{int(b // 10 * 10)}–{int(b // 10 * 10 + 10)}" for b in bpms)
    assert as_dict(figures.bpm) == expected_bpm
    assert sum(c.count for c in figures.duration_s) == len(chosen)
    with_truth = [s for s in chosen if "groundTruthStems" in s]
    assert figures.with_ground_truth == len(with_truth)
    assert as_dict(figures.ground_truth_by_stem) == tally(stem for s in with_truth for stem in s["groundTruthStems"])
    corrections = [c for s in chosen for c in s.get("userCorrections") or []]
    assert as_dict(figures.corrections_by_stem) == tally(c["correctedStem"] for c in corrections)
    assert as_dict(figures.corrections_by_type) == tally(c["correctionType"] for c in corrections)
    lengths = {s.stream: as_dict(s.buckets) for s in figures.stream_lengths}

    def bucket(n: int) -> str:
        return (
            next(
                label
                for upper, label in [
                    (1, "0"),
                    (100, "1–99"),
                    (250, "100–249"),
                    (500, "250–499"),
                    (750, "500–749"),
                    (1000, "750–999"),
                ]
                if n < upper
            )
            if n < 1000
            else "≥1000"
        )

    for stream in ("spectral", "stereo", "energy"):
        assert lengths[stream] == tally(bucket(len(s["quantumFeatures"][stream])) for s in chosen)


def test_stats_api_is_for_admins_only(client, seeded):
    with session_scope() as session:
        operator, _ = create_token("ops", "operator", db_session=session)
        admin, _ = create_token("root", "admin", db_session=session)
    assert client.get("/stats/overview").status_code == 401
    assert client.get("/stats/overview", headers={"Authorization": f"Bearer {operator}"}).status_code == 403
    answer = client.get("/stats/overview?range=24h&channel=beta", headers={"Authorization": f"Bearer {admin}"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["window"]["channel"] == "beta" and body["total"] == 1 and "withGroundTruth" in body
    data = client.get("/stats/data", headers={"Authorization": f"Bearer {admin}"})
    assert data.status_code == 200 and data.json()["total"] == len(seeded)
    assert client.get("/stats/data?range=forever", headers={"Authorization": f"Bearer {admin}"}).status_code == 422


def test_windows_outside_any_snapshot_dates_are_refused_not_overflowed(client):
    with session_scope() as session:
        admin, _ = create_token("root", "admin", db_session=session)
    for query in ("until=0001-01-01T00:00:00Z", "since=9999-12-31T23:59:59Z", "since=1970-01-01"):
        answer = client.get(f"/stats/overview?{query}", headers={"Authorization": f"Bearer {admin}"})
        assert answer.status_code == 422 and "outside 2000-01-01 to 2100-01-01" in answer.json()["detail"], query
