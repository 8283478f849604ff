"""Dashboard benchmark: the overview and data pages over 100,000 stored snapshots in Postgres
(target: the overview computed in under 1 s). Seeds once through the ingest service (synthetic
tracks and Studio's three fixtures, each copy with its own id), spreads the snapshots over 90
days and two channels, then times the stats queries and the rendered pages.

    .venv/bin/python bench/dashboard.py [--snapshots 100000] [--reseed] [--repeats 9]

The seeded database (fabric_bench_dashboard, ~3 GB) is kept for the next run; --reseed
starts it again.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dataset import store_copies  # noqa: E402
from bench.ingest import fresh_database  # noqa: E402

DATABASE = "fabric_bench_dashboard"


def seed(database_url: str, count: int) -> None:
    from sqlalchemy import func, select, text

    from app.db.engine import build_engine
    from app.snapshots.models import Snapshot
    from tests.support import fixture_snapshot
    from training.synthetic import synthetic_snapshots

    templates = synthetic_snapshots(40, seed=11)
    templates += [
        fixture_snapshot(name)
        for name in ("snapshot-with-ground-truth", "snapshot-mono-no-ground-truth", "snapshot-with-corrections-and-nan")
    ]
    store_copies(database_url, templates, count, np.random.default_rng(1), batch_size=250, progress_every=10_000)
    engine = build_engine(database_url)
    with engine.begin() as connection:
        # Received over the last 90 days, denser lately; a tenth on a second channel.
        connection.execute(
            text(
                "UPDATE snapshots SET received_at = now() - (power(random(), 2) * interval '90 days'), "
                "channel = CASE WHEN random() < 0.1 THEN 'beta' ELSE channel END"
            )
        )
        for index in range(300):
            connection.execute(
                text(
                    "INSERT INTO quarantine (fingerprint, channel, http_status, reason_type, reasons, body_size, body_excerpt,"
                    " body_truncated, occurrences, first_seen_at, last_seen_at) VALUES (:f, 'stem-separation', :s, :r,"
                    " '[]', 10, '{}', false, :o, now() - random() * interval '90 days', now())"
                ),
                {
                    "f": f"bench-{index}",
                    "s": (400, 422, 413)[index % 3],
                    "r": ("malformed_json", "validation", "too_large")[index % 3],
                    "o": 1 + index % 4,
                },
            )
        assert connection.scalar(select(func.count()).select_from(Snapshot)) == count
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def timed(function, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return {"median_ms": round(1000 * statistics.median(times), 1), "max_ms": round(1000 * max(times), 1)}


def measure(database_url: str, repeats: int) -> dict:
    import os

    os.environ["DATABASE_URL"] = database_url
    os.environ["FABRIC_RATE_LIMIT_PER_S"] = "0"
    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from app.auth.service import create_token
    from app.db.engine import session_scope
    from app.main import create_app
    from app.snapshots.models import Snapshot
    from app.stats import service
    from tests.support import reset_caches

    reset_caches()  # settings were read at import, before DATABASE_URL pointed here

    def stats(function, **window):
        def run():
            with session_scope() as session:
                function(service.window_for(**window), db_session=session)

        return run

    with session_scope() as session:
        stored = session.scalar(select(func.count()).select_from(Snapshot))
        token, _ = create_token("bench", "admin", db_session=session)
    results = {"snapshots": stored}
    results["overview, all time"] = timed(stats(service.overview, range_name="all"), repeats)
    results["overview, last 7 days"] = timed(stats(service.overview, range_name="7d"), repeats)
    results["overview, one channel"] = timed(stats(service.overview, range_name="all", channel="beta"), repeats)
    results["data, all time"] = timed(stats(service.distributions, range_name="all"), repeats)
    with TestClient(create_app(), base_url="http://bench.local") as browser:
        browser.post("/dashboard/login", data={"token": token})
        for path in ("/dashboard", "/dashboard/data", "/dashboard/training"):
            assert browser.get(path).status_code == 200
            results[f"page {path}"] = timed(lambda p=path: browser.get(p), repeats)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", type=int, default=100_000)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    import psycopg
    from sqlalchemy.engine import make_url

    from tests.support import POSTGRES_ADMIN_URL

    url = make_url(POSTGRES_ADMIN_URL).set(database=DATABASE).render_as_string(hide_password=False)
    try:
        with psycopg.connect(url) as connection:
            have = connection.execute("SELECT count(*) FROM snapshots").fetchone()[0]
    except psycopg.Error:
        have = None
    if args.reseed or have != args.snapshots:
        print(f"seeding {args.snapshots:,} snapshots into {DATABASE} (found {have})", flush=True)
        started = time.perf_counter()
        url = fresh_database(DATABASE)
        seed(url, args.snapshots)
        print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
    results = measure(url, args.repeats)
    print(f"\n{results.pop('snapshots'):,} snapshots in Postgres; {args.repeats} repeats each")
    print(f"{'':<28}{'median ms':>10}{'max ms':>9}")
    for name, figures in results.items():
        print(f"{name:<28}{figures['median_ms']:>10}{figures['max_ms']:>9}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "dashboard.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
