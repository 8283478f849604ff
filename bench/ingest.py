"""Ingest benchmark: Studio-shaped ~100 KB snapshots POSTed at a fixed rate (open loop) to the
real API (uvicorn) on Postgres with durable commits; prints throughput, latency percentiles
and API memory over the run, and checks that every accepted snapshot is stored.

    make bench-ingest                       # 500/s for 60 s, then a rate sweep
    .venv/bin/python bench/ingest.py --rate 500 --duration 300 --sweep ''
"""

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadgen import percentile_ms, run_open_loop, snapshot_requests  # noqa: E402
from tests.support import FIXTURE_NAMES, create_postgres_database, fixture_bytes
from tests.support.servers import api_process, api_processes  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def fresh_database(name: str) -> str:
    """A new, migrated database on the local Postgres, whose commits must be durable."""
    url = create_postgres_database(name)
    with psycopg.connect(url) as connection:
        settings = dict(
            connection.execute("SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit')").fetchall()
        )
    assert settings == {"fsync": "on", "synchronous_commit": "on"}, f"commits are not durable: {settings}"
    return url


class MemorySampler:
    """RSS of the API's processes (uvicorn and its workers), once a second; and the CPU time
    the API and Postgres spent while it ran (the figure that host noise moves least)."""

    def __init__(self, base_url: str) -> None:
        self.base_url, self.samples, self._stop = base_url, [], threading.Event()

    def __enter__(self):
        processes = api_processes(self.base_url)
        self._api, self._cpu_start = processes, (_cpu_seconds(processes), _cpu_seconds(_postgres_processes()))

        def sample() -> None:
            while not self._stop.wait(1.0):
                self.samples.append((time.monotonic(), sum(p.memory_info().rss for p in processes if p.is_running())))

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()
        self.api_cpu_s = _cpu_seconds(self._api) - self._cpu_start[0]
        self.postgres_cpu_s = _cpu_seconds(_postgres_processes()) - self._cpu_start[1]


class CommitProbe:
    """A durable 1-row commit every 20 ms on a connection of its own, beside the load. Its
    latency is Postgres and the disk alone: stalls that show here and in the requests at once
    are theirs (write-back bursts, checkpoints); a request tail with a quiet probe is CPU."""

    def __init__(self, url: str) -> None:
        self.url, self.latencies_s, self.cpu_s, self._stop = url, [], 0.0, threading.Event()

    def __enter__(self):
        self._connection = psycopg.connect(self.url, autocommit=True)
        self._connection.execute("CREATE TABLE IF NOT EXISTS bench_commit_probe (id serial PRIMARY KEY)")
        self._thread = threading.Thread(target=self._probe, daemon=True)
        self._thread.start()
        return self

    def _probe(self) -> None:
        while not self._stop.wait(0.02):
            started = time.perf_counter()
            self._connection.execute("INSERT INTO bench_commit_probe DEFAULT VALUES")
            self.latencies_s.append(time.perf_counter() - started)
        self.cpu_s = time.thread_time()  # taken out of the load generator's CPU

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()
        self._connection.close()

    def summary(self) -> dict:
        return {
            **{f"p{q:g}_ms": round(percentile_ms(self.latencies_s, q), 1) for q in (50, 99, 99.9)},
            "max_ms": round(percentile_ms(self.latencies_s, 100), 1),
            "over_50ms": sum(latency > 0.05 for latency in self.latencies_s),
        }


def _postgres_processes() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] in ("postgres", "postmaster")]


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass  # a backend that ended: its time is lost to both readings alike, near enough
    return total


def host_speed_ms() -> float:
    """How long a fixed pure-Python loop takes here, best of three: this shared host's speed
    drifts by half through a day, and CPU per snapshot and latencies drift with it."""
    best = float("inf")
    for _ in range(3):
        started, total = time.perf_counter(), 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(1000 * best, 1)


def checkpoint_counts(url: str) -> dict:
    """Postgres' checkpoints so far (timed, and requested because WAL reached max_wal_size),
    and the buffers backends had to write themselves; with the settings that drive them."""
    with psycopg.connect(url) as connection:
        timed, requested, by_backends, wal = connection.execute(
            "SELECT checkpoints_timed, checkpoints_req, buffers_backend, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"
            " FROM pg_stat_bgwriter"
        ).fetchone()
        settings = dict(
            connection.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN ('max_wal_size', 'shared_buffers')"
            ).fetchall()
        )
    return {"timed": timed, "requested": requested, "buffers_backend": by_backends, "wal_mb": float(wal) / 2**20, **settings}


def stored_rows(url: str) -> int:
    with psycopg.connect(url) as connection:
        return connection.execute("SELECT count(*) FROM snapshots").fetchone()[0]


def run(rate: float, duration: float, url: str, make) -> dict:
    result = asyncio.run(run_open_loop(url, make, rate, duration))
    interval_s = 10 if duration >= 40 else 5
    return {
        "per_interval": [
            {"from_s": start, "per_s": round(per_s, 1), "p99_ms": round(p99, 1)}
            for start, per_s, p99 in result.per_interval(interval_s)
        ],
        "interval_s": interval_s,
        "rate_target": rate,
        "rate_achieved": round(result.achieved_rate, 1),
        "requests": result.scheduled,
        "p50_ms": round(result.percentile_ms(50), 2),
        "p90_ms": round(result.percentile_ms(90), 2),
        "p99_ms": round(result.percentile_ms(99), 2),
        "max_ms": round(result.percentile_ms(100), 2),
        "generator_lag_p99_ms": round(percentile_ms(result.send_lags_s, 99), 2),
        "statuses": dict(result.statuses),
        "errors": dict(result.errors),
        "connections": result.connections_opened,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--api-workers", type=int, default=2)
    # info, the service's default, writes a JSON access line per request; warning measures without.
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--sweep", default="300,600,700", help="extra rates, 15 s each ('' for none)")
    args = parser.parse_args()

    bodies = [fixture_bytes(name) for name in FIXTURE_NAMES]
    make = snapshot_requests(bodies)
    mean_kb = sum(map(len, bodies)) / len(bodies) / 1024
    database_url = fresh_database("fabric_bench")
    env = {"DATABASE_URL": database_url, "FABRIC_RATE_LIMIT_PER_S": "0", "FABRIC_LOG_LEVEL": args.log_level}
    print(
        f"snapshots: {len(bodies)} fixtures, mean {mean_kb:.0f} KB; Postgres fsync+synchronous_commit on; "
        f"{args.api_workers} API processes; {os.cpu_count()} CPUs"
    )

    report = {
        "host_speed_ms_before": host_speed_ms(),
        "api_workers": args.api_workers,
        "mean_snapshot_kb": round(mean_kb, 1),
        "runs": [],
    }
    with api_process(env, workers=args.api_workers) as base:
        target = f"{base}/stem-separation"
        warmup = run(args.rate, args.warmup, target, make)
        before = checkpoint_counts(database_url)
        generator_cpu_s = time.process_time()  # this process: the load generator (and the sampler)
        with MemorySampler(base) as memory, CommitProbe(database_url) as probe:
            main_run = run(args.rate, args.duration, target, make)
        generator_cpu_s = time.process_time() - generator_cpu_s - probe.cpu_s
        main_run["commit_probe"] = probe.summary()
        after = checkpoint_counts(database_url)
        main_run["postgres"] = {
            **{k: round(after[k] - before[k]) for k in ("timed", "requested", "buffers_backend", "wal_mb")},
            "max_wal_size": after["max_wal_size"],
            "shared_buffers": after["shared_buffers"],
        }
        samples = [rss for _, rss in memory.samples]
        tenth = max(1, len(samples) // 10)
        main_run["rss_mb_first_10pct"] = round(sum(samples[:tenth]) / tenth / 2**20, 1)
        main_run["rss_mb_last_10pct"] = round(sum(samples[-tenth:]) / tenth / 2**20, 1)
        main_run["rss_mb_max"] = round(max(samples) / 2**20, 1)
        start = memory.samples[0][0]  # the mean of each 30 s, to tell a plateau from a leak
        by_half_minute: dict[int, list[int]] = {}
        for at, rss in memory.samples:
            by_half_minute.setdefault(int((at - start) // 30), []).append(rss)
        main_run["rss_mb_per_30s"] = [round(sum(v) / len(v) / 2**20, 1) for _, v in sorted(by_half_minute.items())]
        handled = sum(main_run["statuses"].values())
        main_run["api_cpu_ms_per_snapshot"] = round(1000 * memory.api_cpu_s / handled, 3)
        main_run["postgres_cpu_ms_per_snapshot"] = round(1000 * memory.postgres_cpu_s / handled, 3)
        main_run["load_generator_cpu_ms_per_snapshot"] = round(1000 * generator_cpu_s / handled, 3)
        report["runs"].append(main_run)
        for rate in [float(r) for r in args.sweep.split(",") if r.strip()]:
            report["runs"].append(run(rate, 15, target, make))

    report["host_speed_ms_after"] = host_speed_ms()
    accepted = sum(n for r in [warmup, *report["runs"]] for s, n in r["statuses"].items() if 200 <= int(s) < 300)
    report["stored_rows"] = stored_rows(database_url)
    report["accepted_responses"] = accepted
    print(
        f"\n{'rate':>6} {'achieved':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'gen lag':>8}  statuses / errors"
    )
    for r in report["runs"]:
        print(
            f"{r['rate_target']:>6.0f} {r['rate_achieved']:>9.1f} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} {r['generator_lag_p99_ms']:>8.2f}  {r['statuses']} {r['errors'] or ''}"
        )
    print(
        f"\n{args.rate:.0f}/s run, every {main_run['interval_s']} s: "
        + "  ".join(f"{i['per_s']:.0f}/s p99 {i['p99_ms']:.0f}" for i in main_run["per_interval"])
    )
    print(
        f"\nAPI RSS over the {args.duration:.0f} s run: {main_run['rss_mb_first_10pct']} MB (first 10%) -> "
        f"{main_run['rss_mb_last_10pct']} MB (last 10%), max {main_run['rss_mb_max']} MB; "
        f"per 30 s: {main_run['rss_mb_per_30s']}"
    )
    generator_ms = main_run["load_generator_cpu_ms_per_snapshot"]
    print(
        f"CPU per snapshot over that run: API {main_run['api_cpu_ms_per_snapshot']} ms, "
        f"Postgres {main_run['postgres_cpu_ms_per_snapshot']} ms, load generator {generator_ms} ms; "
        # The generator's work per snapshot is fixed, so these ratios cancel most of the host's drift.
        f"over the generator's: API {main_run['api_cpu_ms_per_snapshot'] / generator_ms:.2f}, "
        f"Postgres {main_run['postgres_cpu_ms_per_snapshot'] / generator_ms:.2f}"
    )
    print(f"Postgres during that run: {main_run['postgres']}")
    print(f"A 1-row durable commit every 20 ms beside it: {main_run['commit_probe']}")
    print(
        f"host speed (a fixed Python loop, lower is faster): {report['host_speed_ms_before']} ms before, "
        f"{report['host_speed_ms_after']} ms after"
    )
    verdict = "every accepted snapshot stored once" if report["stored_rows"] == accepted else "MISMATCH"
    print(f"stored rows {report['stored_rows']}, 2xx answers {accepted} (warm-up included): {verdict}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    main()
