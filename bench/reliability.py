"""Reliability under faults, against the real API process on the local Postgres:

1. Postgres unreachable for --outage seconds (every connection dropped, new ones refused) while
   clients send --rate snapshots a second from one address, retrying exactly as Studio does,
   under the default rate limit: snapshots stored and dropped, the answers seen, the longest wait.
2. Six ~16 KB gzip bodies that inflate to 16 MiB arrays of zeros, sent at once: their answers'
   times and the API process's memory growth.
3. `POST /runs` with the task broker unreachable (a closed port): the time to the 503.

    .venv/bin/python bench/reliability.py [--outage 10] [--rate 50] [--after 3] [--total 16]
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import fresh_database  # noqa: E402
from tests.support import amplified_gzip_body  # noqa: E402
from tests.support.servers import TcpProxy, api_process, api_processes, free_port, peak_rss_during, post_at_once  # noqa: E402
from tests.support.studio_client import stream_through_outage  # noqa: E402

AMPLIFIED = amplified_gzip_body()
FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "snapshot-with-corrections-and-nan.json"
FETCH_HEADERS = {"Content-Type": "application/json", "X-Prime-Fabric-Channel": "stem-separation"}


def outage(database_url: str, rate: float, total_s: float, after_s: float, outage_s: float) -> dict:
    template = json.loads(FIXTURE.read_bytes())
    bodies = {}
    for _ in range(int(rate * total_s)):
        snapshot_id = str(uuid.uuid4())
        bodies[snapshot_id] = json.dumps({**template, "id": snapshot_id}).encode()
    url = make_url(database_url)
    with TcpProxy(target_port=url.port or 5432) as proxy:
        via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        with api_process({"DATABASE_URL": via_proxy, "FABRIC_LOG_LEVEL": "error"}) as base:
            exporter = asyncio.run(
                stream_through_outage(
                    f"{base}/stem-separation", bodies, proxy, every_s=1 / rate, after_s=after_s, outage_s=outage_s
                )
            )
    return {
        "sent": len(bodies),
        "stored": len(exporter.delivered),
        "dropped": len(exporter.dropped),
        "answers": {str(k): v for k, v in exporter.statuses.items()},
        "longest_wait_s": round(max(exporter.latencies_s), 2),
        "median_wait_ms": round(statistics.median(exporter.latencies_s) * 1000, 1),
    }


def amplification(database_url: str) -> dict:
    with api_process({"DATABASE_URL": database_url, "FABRIC_RATE_LIMIT_PER_S": "0"}) as base:
        [server] = api_processes(base)
        headers = {**FETCH_HEADERS, "Content-Encoding": "gzip"}
        alone = []
        for _ in range(5):
            answer = httpx.post(f"{base}/stem-separation", content=AMPLIFIED, headers=headers, timeout=30)
            alone.append(answer.elapsed.total_seconds() * 1000)
        answers, before, peak = peak_rss_during(server, lambda: post_at_once(f"{base}/stem-separation", AMPLIFIED, headers, 6))
        after = server.memory_info().rss
    return {
        "gzip_bytes": len(AMPLIFIED),
        "answers": sorted({a.status_code for a in answers}),
        "alone_median_ms": round(statistics.median(alone), 1),
        "six_at_once_ms": sorted(round(a.elapsed.total_seconds() * 1000, 1) for a in answers),
        "rss_peak_growth_mb": round((peak - before) / 2**20, 1),
        "rss_after_growth_mb": round((after - before) / 2**20, 1),
    }


def broker_down(database_url: str) -> dict:
    from app.auth.service import create_token
    from app.db.engine import session_scope
    from tests.support import reset_caches

    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = {"DATABASE_URL": database_url, "CELERY_BROKER_URL": closed, "CELERY_RESULT_BACKEND": closed}
    import os

    os.environ.update(env)
    reset_caches()
    with session_scope() as session:
        token, _ = create_token("bench", "operator", db_session=session)
    times, statuses = [], set()
    with api_process(env) as base:
        for _ in range(5):
            started = time.perf_counter()
            answer = httpx.post(
                f"{base}/runs", json={"candidates": ["tiny"]}, headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            times.append(time.perf_counter() - started)
            statuses.add(answer.status_code)
    return {"answers": sorted(statuses), "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds Postgres is unreachable")
    parser.add_argument("--rate", type=float, default=50.0, help="snapshots a second, from one address")
    parser.add_argument("--after", type=float, default=3.0, help="seconds of sending before the outage")
    parser.add_argument("--total", type=float, default=16.0, help="seconds of sending in all")
    args = parser.parse_args()

    database_url = fresh_database("fabric_bench_reliability")
    report = {
        "outage": outage(database_url, args.rate, args.total, args.after, args.outage),
        "amplification": amplification(database_url),
        "broker_down": broker_down(database_url),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
