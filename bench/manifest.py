"""Latest-weights manifest under load: Studio clients polling with If-None-Match (answered
304) at a fixed rate against the real API on Postgres, and the time from a promotion until a
poll sees the new version. Target: >= 2,000 requests/s, p99 under 20 ms.

    .venv/bin/python bench/manifest.py [--rate 2000] [--duration 20]
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dataset import seed  # noqa: E402
from bench.ingest import fresh_database  # noqa: E402
from bench.loadgen import fixed_requests, run_open_loop  # noqa: E402
from tests.support import reset_caches
from tests.support.servers import api_process  # noqa: E402


def publish_two_models(artifacts: Path) -> list[int]:
    from app.db.engine import session_scope
    from app.stem_models.models import StemModel
    from tests.support.runs import tiny_runs

    run_ids = tiny_runs(artifacts, (2, 3), "bench", worker="bench")
    with session_scope() as session:
        return [session.query(StemModel).filter_by(run_id=run_id).one().id for run_id in run_ids]


def promote(model_id: int) -> None:
    from app.db.engine import session_scope
    from app.stem_models.service import promote as promote_model

    with session_scope() as session:
        promote_model(model_id, "bench", "bench", force=True, db_session=session)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--api-workers", type=int, default=2)
    args = parser.parse_args()

    database_url = fresh_database("fabric_bench_manifest")
    os.environ["DATABASE_URL"] = database_url  # for the in-process stages below
    reset_caches()
    seed(database_url, 120)
    with tempfile.TemporaryDirectory() as artifacts:
        first, second = publish_two_models(Path(artifacts))
        promote(first)
        env = {
            "DATABASE_URL": database_url,
            "FABRIC_RATE_LIMIT_PER_S": "0",
            "FABRIC_LOG_LEVEL": "warning",
            "FABRIC_ARTIFACTS_DIR": artifacts,
        }
        with api_process(env, workers=args.api_workers) as base:
            etag = httpx.get(f"{base}/models/latest").headers["etag"]
            make = fixed_requests("/models/latest", {"If-None-Match": etag, "Origin": "http://localhost:5173"})
            asyncio.run(run_open_loop(base, make, args.rate, 3))  # warm-up
            result = asyncio.run(run_open_loop(base, make, args.rate, args.duration))

            visibility = []
            with httpx.Client(base_url=base) as studio:
                for model_id in [second, first] * 3:
                    promote(model_id)
                    promoted_at = time.perf_counter()
                    while (seen := studio.get("/models/latest", headers={"If-None-Match": etag})).status_code == 304:
                        time.sleep(0.001)
                    visibility.append(time.perf_counter() - promoted_at)
                    # The ETag of the answer that showed the change: asking again could reach
                    # the other API process, which may still answer the previous model.
                    etag = seen.headers["etag"]

    print(f"{args.api_workers} API processes; conditional polls answered {dict(result.statuses)} {dict(result.errors) or ''}")
    print(
        f"rate {args.rate:.0f}/s for {args.duration:.0f} s: achieved {result.achieved_rate:.0f}/s, "
        f"p50 {result.percentile_ms(50):.2f} ms, p90 {result.percentile_ms(90):.2f} ms, "
        f"p99 {result.percentile_ms(99):.2f} ms, max {result.percentile_ms(100):.1f} ms"
    )
    print(
        f"promotion -> seen by a poll: median {1000 * statistics.median(visibility):.1f} ms, "
        f"max {1000 * max(visibility):.1f} ms over {len(visibility)} promotions"
    )


if __name__ == "__main__":
    main()
