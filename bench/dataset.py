"""Dataset build benchmark: snapshots with ground truth streamed from Postgres into shards.
Prints throughput and the build's peak memory at two sizes (target: >= 2,000 snapshots/s, and
peak memory at 20,000 within 1.5x of that at 1,000).

    .venv/bin/python bench/dataset.py [--sizes 1000,20000]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import fresh_database  # noqa: E402


def seed(database_url: str, count: int) -> None:
    """`count` stored snapshots: copies of 40 synthetic tracks (adds to what is there)."""
    from sqlalchemy import func, select

    from app.db.engine import build_engine
    from app.snapshots.models import Snapshot
    from training.synthetic import synthetic_snapshots

    engine = build_engine(database_url)
    with engine.connect() as connection:
        have = connection.scalar(select(func.count()).select_from(Snapshot))
    engine.dispose()
    # A new random stream per call: no copy repeats an earlier one.
    store_copies(database_url, synthetic_snapshots(40, seed=9), count - have, np.random.default_rng(have))


def store_copies(
    database_url: str, templates: list[dict], count: int, rng: np.random.Generator, batch_size: int = 100, progress_every: int = 0
) -> None:
    """Stores `count` snapshots through the ingest service: each a copy of one of `templates`
    with a new id and its own confidence, so every row has distinct content."""
    from app.config import Settings
    from app.db.engine import build_engine
    from app.quarantine.service import RequestContext
    from app.snapshots.service import prepare_request, store_request

    engine = build_engine(database_url)
    settings = Settings(database_url=database_url, max_snapshots_per_request=batch_size)
    context = RequestContext("stem-separation", None, "application/json", None)
    started = time.perf_counter()
    for start in range(0, count, batch_size):
        batch = []
        for _ in range(min(batch_size, count - start)):
            snapshot = dict(templates[rng.integers(0, len(templates))])
            snapshot["id"] = str(uuid.uuid4())
            snapshot["metadata"] = {**snapshot["metadata"], "confidence": float(rng.uniform(0.5, 1.0))}
            batch.append(snapshot)
        with engine.begin() as connection:
            store_request(connection, prepare_request(orjson.dumps(batch), context, settings), settings)
        if progress_every and start % progress_every == 0:
            print(f"  {start:,} stored ({time.perf_counter() - started:.0f} s)", flush=True)
    engine.dispose()


def build_once(database_url: str) -> dict:
    """Runs in its own process, so ru_maxrss is this build's peak alone."""
    from sqlalchemy.orm import Session

    from app.artifacts import LocalStore
    from app.config import Settings  # noqa: F401  (imports before measuring)
    from app.datasets.service import build_dataset
    from app.db.engine import build_engine

    engine = build_engine(database_url)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with Session(engine) as session, tempfile.TemporaryDirectory() as out:
        built = build_dataset(LocalStore(Path(out)), "bench", 0.8, db_session=session)
        total = built.manifest["counts"]["total"]
        session.delete(built)
        session.commit()
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "snapshots": total,
        "seconds": round(elapsed, 2),
        "per_s": round(total / elapsed),
        "peak_rss_mb": round(peak / 1024, 1),
        "rss_before_mb": round(baseline / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,20000")
    parser.add_argument("--build-only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        print(json.dumps(build_once(args.build_only)))
        return
    database_url = fresh_database("fabric_bench_dataset")
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        started = time.perf_counter()
        seed(database_url, size)
        print(f"seeded {size} snapshots in {time.perf_counter() - started:.0f} s", flush=True)
        output = subprocess.run(
            [sys.executable, __file__, "--build-only", database_url], capture_output=True, text=True, check=True
        )
        results.append(json.loads(output.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    print(f"\n{'snapshots':>10} {'seconds':>8} {'per s':>7} {'peak RSS MB':>12}")
    for r in results:
        print(f"{r['snapshots']:>10} {r['seconds']:>8} {r['per_s']:>7} {r['peak_rss_mb']:>12}")
    if len(results) > 1:
        print(
            f"peak memory ratio {results[-1]['snapshots']} vs {results[0]['snapshots']}: "
            f"{results[-1]['peak_rss_mb'] / results[0]['peak_rss_mb']:.2f}x"
        )


if __name__ == "__main__":
    main()
