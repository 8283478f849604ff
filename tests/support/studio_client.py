"""Studio's exporter as docs/contract.md describes it, for tests and benchmarks: one POST per
snapshot; a non-2xx answer or a network error puts it in a retry queue (at most 50 held,
oldest dropped on overflow), retried after 2 s, up to 5 attempts, then dropped."""

import asyncio
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import httpx

FETCH_HEADERS = {"Content-Type": "application/json", "X-Prime-Fabric-Channel": "stem-separation"}


@dataclass
class StudioExporter:
    url: str
    client: httpx.AsyncClient
    retry_delay_s: float = 2.0
    max_attempts: int = 5
    max_queued: int = 50
    statuses: Counter = field(default_factory=Counter)  # every answer, "error" for no answer
    errors: Counter = field(default_factory=Counter)  # the kinds of "error"
    delivered: set[str] = field(default_factory=set)
    dropped: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    _queued: OrderedDict = field(default_factory=OrderedDict)  # snapshot id -> still queued

    async def export(self, snapshot_id: str, body: bytes) -> None:
        """Sends one snapshot and keeps retrying it as Studio would; returns when settled."""
        for attempt in range(1, self.max_attempts + 1):
            if await self._post(body):
                self._queued.pop(snapshot_id, None)
                self.delivered.add(snapshot_id)
                return
            if attempt == self.max_attempts or not self._enqueue(snapshot_id):
                break
            await asyncio.sleep(self.retry_delay_s)
            if snapshot_id not in self._queued:  # pushed out by a newer one
                break
        self._queued.pop(snapshot_id, None)
        self.dropped.append(snapshot_id)

    def _enqueue(self, snapshot_id: str) -> bool:
        self._queued[snapshot_id] = True
        self._queued.move_to_end(snapshot_id)
        while len(self._queued) > self.max_queued:
            self._queued.popitem(last=False)  # the oldest is dropped
        return snapshot_id in self._queued

    async def _post(self, body: bytes) -> bool:
        started = time.perf_counter()
        try:
            response = await self.client.post(self.url, content=body, headers=FETCH_HEADERS)
        except httpx.TransportError as error:
            self.statuses["error"] += 1
            self.errors[type(error).__name__] += 1
            return False
        self.latencies_s.append(time.perf_counter() - started)
        self.statuses[response.status_code] += 1
        return 200 <= response.status_code < 300


async def stream_through_outage(
    url: str, bodies: dict[str, bytes], proxy, *, every_s: float, after_s: float, outage_s: float
) -> StudioExporter:
    """Sends each body as Studio would, one every `every_s`, while `proxy` (servers.TcpProxy)
    cuts the API off from its database `after_s` into the stream, for `outage_s`."""
    # A browser queues requests beyond its connection limit without failing them (httpx's pool
    # would time them out, so it gets no limit), and sends again a request that met a kept-alive
    # connection the server had just closed (httpx does not: it lets a connection go before the
    # server's 5 s keep-alive timeout instead).
    limits = httpx.Limits(max_connections=None, keepalive_expiry=2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        exporter = StudioExporter(url, client)

        async def outage() -> None:
            await asyncio.sleep(after_s)
            proxy.block()
            await asyncio.sleep(outage_s)
            proxy.unblock()

        tasks = [asyncio.create_task(outage())]
        for snapshot_id, body in bodies.items():
            tasks.append(asyncio.create_task(exporter.export(snapshot_id, body)))
            await asyncio.sleep(every_s)
        await asyncio.gather(*tasks)
    return exporter
