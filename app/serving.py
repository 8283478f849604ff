"""How the API process is served: uvicorn with this service's connection limits and timeouts.

One way to start it (`fabric api`, which `fabric serve` and the API image use), so the limits
below hold wherever it runs. Behind a reverse proxy (nginx, a cloud load balancer), set the
proxy's own timeouts as well; these are what holds when a client reaches uvicorn directly.
"""

import asyncio
import os
import tempfile

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import Settings, get_settings
from app.logs import logging_config


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol on httptools (its C parser: h11, in pure Python, cost ~7% more
    of the API's CPU a snapshot, bench/ingest.py), plus a deadline for a request's headers: a connection that opens and
    sends nothing, or sends its headers a byte at a time, is closed once
    `request_header_timeout_s` has passed (uvicorn times out idle keep-alive connections only
    after a first response, and never slow headers). Slow bodies: limits.BodyLimitMiddleware."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._await_headers()

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        in_flight = self.cycle is not None and not self.cycle.response_complete  # a pipelined request
        if not in_flight and not self.transport.is_closing():
            self._await_headers()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._cancel_header_deadline()
        timeout_s = get_settings().request_header_timeout_s  # read here: API processes are spawned afresh
        self._header_deadline = self.loop.call_later(timeout_s, self._headers_too_late)

    def _cancel_header_deadline(self) -> None:
        if getattr(self, "_header_deadline", None) is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_late(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def uvicorn_options(settings: Settings) -> dict:
    """The uvicorn settings that bound connections, from ours."""
    return {
        "http": GuardedHttpToolsProtocol,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        # Beyond this many open connections or requests in flight, uvicorn answers 503 at once.
        "limit_concurrency": settings.max_connections,
        # X-Forwarded-For / -Proto are believed only from these addresses (the reverse proxy):
        # the rate limit's buckets are per client address, and the dashboard's cookie is
        # Secure when the proxy says the client used TLS.
        "proxy_headers": True,
        "forwarded_allow_ips": settings.trusted_proxies,
        "access_log": False,  # app/logs.py writes one, with the request's id
        "log_level": settings.log_level,
        "log_config": logging_config(settings),
    }


def run_api(host: str, port: int, workers: int) -> None:
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each process counts for itself; /metrics adds up what they all wrote in this folder
        # (a fresh one per start: counters restart with the server, as Prometheus expects).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="fabric-prometheus-")
    uvicorn.run("app.main:app", host=host, port=port, workers=workers, **uvicorn_options(get_settings()))
