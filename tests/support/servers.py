"""Real processes for integration tests and benchmarks: the API under uvicorn, a Celery
worker, an S3-compatible object store, and a TCP proxy that can cut the API off from Postgres."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.broker import worker_argv

ROOT = Path(__file__).resolve().parents[2]
# Debian's Chromium, driven by Playwright in the browser tests and benchmarks.
CHROMIUM = os.environ.get("FABRIC_TEST_CHROMIUM", "/usr/bin/chromium")
# Headless, and nothing that would reach out of this machine.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"gave up waiting for {what} after {timeout_s} s")


def answers_healthz(base_url: str) -> bool:
    """Whether the API at base_url is up and reaches its database."""
    try:
        return httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def api_process(env: dict[str, str], workers: int = 1, log_path: Path | None = None) -> Iterator[str]:
    """Runs the API (`fabric api`: uvicorn with our limits) in its own process; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    # The address the server is reached at is its public base URL, unless the test says otherwise.
    env = {"FABRIC_PUBLIC_BASE_URLS": json.dumps([url]), **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "api", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT,
        env={**os.environ, "FABRIC_LOG_LEVEL": "warning", **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}")
        return answers_healthz(url)

    try:
        wait_until(healthy, 30, "the API to answer /healthz")
        yield url
    finally:
        _stop(process, signal.SIGINT, log if log_path else None)


def api_processes(base_url: str) -> list:
    """The processes of the API started by api_process at base_url: the server and, with
    several workers, its worker processes (psutil.Process)."""
    import psutil

    port = base_url.rsplit(":", 1)[1]
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if command[1:4] == ["-m", "app.cli", "api"] and port in command:
            return [process, *process.children(recursive=True)]
    return []


def peak_rss_during(process, action) -> tuple:
    """(what action() returned, the process's RSS before, its peak RSS meanwhile) in bytes,
    sampled every 2 ms."""
    before, peak, done = process.memory_info().rss, 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            done.wait(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = action()
    finally:
        done.set()
        sampler.join()
    return result, before, max(peak, before)


def post_at_once(url: str, body: bytes, headers: dict, count: int) -> list[httpx.Response]:
    """The same body POSTed `count` times at once, each on its own connection."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: httpx.post(url, content=body, headers=headers, timeout=30), range(count)))


@contextmanager
def object_store_server(bucket: str = "fabric") -> Iterator[dict[str, str]]:
    """Runs moto's S3 server (a real HTTP server speaking the S3 API, offline) with one bucket;
    yields the settings that point the service at it, under a prefix of its own."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {process.returncode}")
            try:
                return httpx.put(f"{endpoint}/{bucket}", timeout=1).status_code == 200  # creates the bucket
            except httpx.TransportError:
                return False

        wait_until(up, 30, "the S3 server to answer")
        yield {
            "FABRIC_ARTIFACTS_URL": f"s3://{bucket}/fabric-{os.getpid()}",
            "FABRIC_ARTIFACTS_ENDPOINT": endpoint,
            "FABRIC_ARTIFACTS_ACCESS_KEY_ID": "test",
            "FABRIC_ARTIFACTS_SECRET_ACCESS_KEY": "test",
        }
    finally:
        _stop(process, signal.SIGTERM, None)


@contextmanager
def worker_process(
    env: dict[str, str], queue: str = "cpu", log_path: Path | None = None, name: str | None = None
) -> Iterator[subprocess.Popen]:
    """Runs a real Celery worker process (solo pool) until the block ends."""
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        worker_argv(
            queue,
            f"{name or 'test-' + queue}@%h",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ),
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        _stop(process, signal.SIGTERM, log if log_path else None)


def _stop(process: subprocess.Popen, sig: signal.Signals, log) -> None:
    """Asks politely, then kills; closes the process's log file."""
    process.send_signal(sig)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    if log is not None:
        log.close()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target port. `block()` drops every open connection and
    refuses new ones (as a Postgres restart or a network partition would); `unblock()` heals."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.blocked = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> "TcpProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=5)
        return self

    def __exit__(self, *_exc) -> None:
        self._call(self._drop_all)

        async def stop() -> None:  # every connection's task ends before the loop does
            self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def block(self) -> None:
        self.blocked = True
        self._call(self._drop_all)

    def unblock(self) -> None:
        self.blocked = False

    def _call(self, function) -> None:
        async def run() -> None:
            function()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=5)

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            client_writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
