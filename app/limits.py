"""Request limits, as pure ASGI middleware: a body's size and time, and a per-client rate limit."""

import asyncio
import logging
import math
import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.counters import RATE_LIMITED


class BodyTooLarge(Exception):
    def __init__(self, limit: int, received: int, last_chunk: bytes) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit
        self.received = received
        # The chunk that crossed the limit, so a view can keep a prefix of what was sent.
        self.last_chunk = last_chunk


class BodyTimeout(Exception):
    def __init__(self, timeout_s: float, received: int) -> None:
        super().__init__(f"the request body did not arrive within {timeout_s:g} s ({received} bytes came)")


log = logging.getLogger("prime_fabric")


class BodyLimitMiddleware:
    """Raises BodyTooLarge from `receive` once a body passes `max_bytes`, whatever
    Content-Length said, so nothing reads more than that into memory; and BodyTimeout when the
    whole body has not come `timeout_s` after the headers, so a client sending a byte a second
    cannot hold a connection. Views that keep rejected bodies (ingest) catch BodyTooLarge;
    elsewhere the handlers below answer 413 and 408."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0
        declared = _content_length(scope)
        limit = self.max_bytes
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        body_done = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body, receive() only waits for a disconnect: no deadline
                return await receive()
            try:
                # timeout_at, not wait_for: wait_for wraps each receive in a task of its own,
                # which costs more than the receive, and a snapshot arrives in several chunks.
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.timeout_s, received) from None
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                body_done = not message.get("more_body", False)
                if received > limit or (declared is not None and declared > limit):
                    raise BodyTooLarge(limit, max(received, declared or 0), chunk)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def body_too_large_handler(_request: Request, error: BodyTooLarge) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=413)


def client_address(request: Request) -> str:
    """Who sent a request, for log lines (behind a trusted proxy, the forwarded address)."""
    return request.client.host if request.client else "unknown"


async def body_timeout_handler(request: Request, error: BodyTimeout) -> JSONResponse:
    log.warning("%s %s from %s: %s", request.method, request.url.path, client_address(request), error)
    return JSONResponse({"detail": str(error)}, status_code=408, headers={"Connection": "close"})


def refund_rate_limit(request: Request) -> None:
    """Gives the request's token back: it only repeated what is already stored (a duplicate)."""
    request.state.rate_limit_refund = True


class RateLimitMiddleware:
    """A token bucket per client address: `rate` requests a second, bursts of `burst`.

    Buckets live in this process; with several API processes each has its own, so the
    effective limit is per process. Answers 429 with Retry-After (Studio retries after 2 s).
    A request answered 503 (our outage, not the client's doing) and one that only repeated
    stored snapshots (refund_rate_limit) get their token back: Studio retries both, and after
    an outage those retries must not use up the bucket that its new snapshots need.
    """

    EXEMPT_PATHS = frozenset({"/healthz"})

    def __init__(self, app: ASGIApp, rate: float, burst: int, max_clients: int = 100_000) -> None:
        self.app = app
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last refill)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.EXEMPT_PATHS or self.rate <= 0:
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else "unknown"
        wait_s = self._take(client, time.monotonic())
        if wait_s > 0:
            RATE_LIMITED.inc()
            response = JSONResponse(
                {"detail": f"rate limit: {self.rate:g} requests/s with bursts of {self.burst}; retry later"},
                status_code=429,
                headers={"Retry-After": str(math.ceil(wait_s))},
            )
            await response(scope, receive, send)
            return
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            if status == 503 or scope.get("state", {}).get("rate_limit_refund"):
                self._refund(client)

    def _refund(self, client: str) -> None:
        tokens, last = self.buckets.get(client, (float(self.burst), time.monotonic()))
        self.buckets[client] = (min(float(self.burst), tokens + 1.0), last)

    def _take(self, client: str, now: float) -> float:
        """Takes one token; returns 0, or how long until one is there."""
        tokens, last = self.buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self.buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if len(self.buckets) >= self.max_clients and client not in self.buckets:
            self._forget_full_buckets(now)
        self.buckets[client] = (tokens - 1.0, now)
        return 0.0

    def _forget_full_buckets(self, now: float) -> None:
        # Buckets that have refilled carry no state worth keeping. If that is not enough (a flood
        # of new addresses), the oldest go, down to 90% so this sweep is rare: such a client
        # starts again with a full bucket.
        refill_s = self.burst / self.rate
        self.buckets = {c: v for c, v in self.buckets.items() if now - v[1] < refill_s}
        for client in list(self.buckets)[: max(0, len(self.buckets) - self.max_clients * 9 // 10)]:
            del self.buckets[client]
