"""An open-loop HTTP load generator: requests are *scheduled* at a fixed rate and each one's
latency is measured from its scheduled time, so a slow server cannot slow the generator down
and hide its own queueing (no coordinated omission). Raw asyncio sockets keep its own CPU
cost small, since it shares this machine's two cores with the server it measures."""

import asyncio
import gc
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


def percentile_ms(seconds: list[float], q: float) -> float:
    """The q-th percentile (0-100, 100 = the maximum) of durations in seconds, in ms."""
    ordered = sorted(seconds)
    return 1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


@dataclass
class LoadResult:
    scheduled: int
    rate: float
    duration_s: float
    latencies_s: list[float] = field(default_factory=list)
    completed_at_s: list[float] = field(default_factory=list)  # since start, per latency
    # How late the generator itself sent each request: its own scheduling delay, which the
    # latencies include (high lag means the generator, not the server, fell behind).
    send_lags_s: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    connections_opened: int = 0

    def percentile_ms(self, q: float) -> float:
        return percentile_ms(self.latencies_s, q)

    def per_interval(self, interval_s: float) -> list[tuple[float, float, float]]:
        """(interval start s, completed per second, p99 ms) for each interval of the run."""
        buckets: dict[int, list[float]] = {}
        for done, latency in zip(self.completed_at_s, self.latencies_s, strict=True):
            buckets.setdefault(int(done // interval_s), []).append(latency)
        return [
            (index * interval_s, len(latencies) / interval_s, percentile_ms(latencies, 99))
            for index, latencies in sorted(buckets.items())
        ]

    @property
    def achieved_rate(self) -> float:
        return len(self.latencies_s) / self.duration_s


# Servers close idle keep-alive connections (uvicorn after 5 s); ones idle longer than this
# are not reused, as a browser would not.
MAX_IDLE_S = 3.0


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.last_used = time.perf_counter()

    async def request(self, payload: bytes) -> int:
        self.writer.write(payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status


async def run_open_loop(
    url: str, make_request: Callable[[str, int], bytes], rate: float, duration_s: float, max_connections: int = 256
) -> LoadResult:
    """Sends `rate` requests a second for `duration_s`; `make_request(host, i)` builds each one."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    total = int(rate * duration_s)
    result = LoadResult(scheduled=total, rate=rate, duration_s=duration_s)
    idle: list[_Connection] = []
    open_connections = 0
    start = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        nonlocal open_connections
        scheduled_at = start + i / rate
        payload = make_request(f"{host}:{port}", i)
        connection = None
        while idle and connection is None:
            connection = idle.pop()
            if time.perf_counter() - connection.last_used > MAX_IDLE_S:
                connection.writer.close()
                open_connections -= 1
                connection = None
        try:
            if connection is None:
                if open_connections >= max_connections:
                    result.errors["connection_limit"] += 1
                    return
                open_connections += 1
                result.connections_opened += 1
                connection = _Connection(*await asyncio.open_connection(host, port))
            result.send_lags_s.append(time.perf_counter() - scheduled_at)
            status = await connection.request(payload)
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            result.errors[type(error).__name__] += 1
            open_connections -= 1
            return
        now = time.perf_counter()
        result.latencies_s.append(now - scheduled_at)
        result.completed_at_s.append(now - start)
        result.statuses[status] += 1
        connection.last_used = time.perf_counter()
        idle.append(connection)

    # The generator's own pauses would be counted as the server's latency: keep only the
    # requests in flight (not every finished task), and no garbage collection while it runs
    # (its full collections walked the growing heap of finished tasks: pauses of ~0.5 s).
    in_flight: set[asyncio.Task] = set()
    collecting = gc.isenabled()
    gc.disable()
    try:
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        while in_flight:
            await asyncio.gather(*list(in_flight))
    finally:
        if collecting:
            gc.enable()
    for connection in idle:
        connection.writer.close()
    return result


def snapshot_requests(fixture_bodies: list[bytes], path: str = "/stem-separation"):
    """Studio's fetch, byte for byte: each request one of the fixtures with a fresh id."""
    import orjson

    templates = []
    for body in fixture_bodies:
        document = orjson.loads(body)
        marker = document["id"].encode()
        prefix, suffix = body.split(marker, 1)
        templates.append((prefix, suffix))

    def make(host: str, i: int) -> bytes:
        prefix, suffix = templates[i % len(templates)]
        body = prefix + str(uuid.uuid4()).encode() + suffix
        return (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"X-Prime-Fabric-Channel: stem-separation\r\nOrigin: http://localhost:5173\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    return make


def fixed_requests(path: str, headers: dict[str, str]):
    """The same GET each time (Studio polling the latest-weights manifest)."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())

    def make(host: str, _i: int) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()

    return make
