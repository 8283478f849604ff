"""Commit stalls from the kernel's write-back, with and without Postgres' backend_flush_after.

Ingest writes ~10 MB/s of rows (500 snapshots/s of ~20 KB of float blobs). Backends write
those pages to the kernel, which holds them as dirty until they are 30 s old and then writes
hundreds of MB at once; a commit's WAL fsync waits behind that burst. This reproduces the load
with plain inserts (no API, so CPU noise stays out of it) and measures small durable commits
beside it, alternating the setting between runs.

    .venv/bin/python bench/commit_stalls.py                 # 2 rounds of 70 s per setting
    .venv/bin/python bench/commit_stalls.py --rounds 1 --duration 40
"""

import argparse
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.engine import make_url  # noqa: E402

from bench.ingest import CommitProbe  # noqa: E402
from tests.support import POSTGRES_ADMIN_URL

DATABASE = "fabric_commit_stalls"
BLOB_BYTES = 10_000  # four per row: ~40 KB, about a snapshot with ground truth


def fresh_database(flush_after: str) -> str:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
        if flush_after:
            admin.execute(f"ALTER DATABASE {DATABASE} SET backend_flush_after = '{flush_after}'")
    url = make_url(POSTGRES_ADMIN_URL).set(database=DATABASE).render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE rows (id uuid PRIMARY KEY, a bytea, b bytea, c bytea, d bytea)")
        for column in "abcd":  # as the snapshots' blobs: out of line, not compressed
            connection.execute(f"ALTER TABLE rows ALTER {column} SET STORAGE EXTERNAL")
    return url


def run(flush_after: str, duration_s: float, rows_per_s: int) -> dict:
    url = fresh_database(flush_after)
    stop = time.monotonic() + duration_s
    writers = 2  # like the two API processes' ingest writers

    def write() -> None:
        blob = os.urandom(BLOB_BYTES)
        per_transaction, interval = 5, 5 * writers / rows_per_s
        with psycopg.connect(url) as connection:
            while time.monotonic() < stop:
                started = time.monotonic()
                with connection.transaction():
                    for _ in range(per_transaction):
                        connection.execute("INSERT INTO rows VALUES (%s, %s, %s, %s, %s)", (uuid.uuid4(), blob, blob, blob, blob))
                time.sleep(max(0.0, interval - (time.monotonic() - started)))

    threads = [threading.Thread(target=write) for _ in range(writers)]
    with CommitProbe(url) as probe:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with psycopg.connect(url) as connection:
        written = connection.execute("SELECT count(*) FROM rows").fetchone()[0]
    return {"flush_after": flush_after or "off", "rows_per_s": round(written / duration_s), **probe.summary()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=70, help="seconds per run (over 30 to see a burst)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows-per-s", type=int, default=500)
    args = parser.parse_args()
    print(f"{args.rows_per_s} rows/s of {4 * BLOB_BYTES // 1000} KB; a durable 1-row commit every 20 ms beside them")
    print(f"{'flush after':>12} {'rows/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>9} {'max ms':>7} {'>50 ms':>7}")
    for _ in range(args.rounds):
        for setting in ("", "256kB"):
            r = run(setting, args.duration, args.rows_per_s)
            print(
                f"{r['flush_after']:>12} {r['rows_per_s']:>7} {r['p50_ms']:>7} {r['p99_ms']:>7} {r['p99.9_ms']:>9} "
                f"{r['max_ms']:>7} {r['over_50ms']:>7}",
                flush=True,
            )
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


if __name__ == "__main__":
    main()
