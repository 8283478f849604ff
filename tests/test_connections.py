"""Connections cannot starve the server: idle and slow-header connections are closed, slow
bodies get 408, and X-Forwarded-For is believed only from trusted proxies. A real API process
(`fabric api`), raw sockets."""

import json
import socket
import time

import httpx
import pytest

from tests.support import FETCH_HEADERS, fixture_snapshot
from tests.support.servers import api_process

pytestmark = pytest.mark.slow


@pytest.fixture
def api(configure, sqlite_url, tmp_path):
    env = {
        "DATABASE_URL": sqlite_url,
        "FABRIC_REQUEST_HEADER_TIMEOUT_S": "1",
        "FABRIC_REQUEST_BODY_TIMEOUT_S": "1",
        "FABRIC_RATE_LIMIT_PER_S": "0",
    }
    configure(**env)
    with api_process(env, log_path=tmp_path / "api.log") as base:
        host, port = base.removeprefix("http://").split(":")
        yield base, (host, int(port))


def _closed_by_server(connection: socket.socket, within_s: float) -> bool:
    connection.settimeout(within_s)
    try:
        return connection.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_connections_are_closed_and_do_not_starve_the_server(api):
    base, address = api
    idle = [socket.create_connection(address) for _ in range(300)]
    try:
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200  # while 300 sit idle
        time.sleep(1.5)
        assert all(_closed_by_server(connection, within_s=2) for connection in idle)
    finally:
        for connection in idle:
            connection.close()


def test_headers_sent_a_byte_at_a_time_are_cut_off(api):
    _, address = api
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
    with socket.create_connection(address) as connection:
        started, closed = time.monotonic(), False
        for byte in request:
            try:
                connection.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
        closed = closed or _closed_by_server(connection, within_s=2)
    assert closed and time.monotonic() - started < 4


def test_a_slow_body_gets_408(api):
    _, address = api
    with socket.create_connection(address) as connection:
        connection.sendall(
            b"POST /stem-separation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'X-Prime-Fabric-Channel: stem-separation\r\nContent-Length: 100000\r\n\r\n{"id": '
        )
        connection.settimeout(5)
        answer = b""
        while chunk := connection.recv(4096):  # the server closes the connection after it
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"did not arrive within 1 s" in answer


@pytest.mark.parametrize("trusted, separate_buckets", [("127.0.0.1", True), ("10.9.9.9", False)])
def test_forwarded_addresses_are_believed_only_from_trusted_proxies(configure, sqlite_url, tmp_path, trusted, separate_buckets):
    """Behind a trusted proxy each client has its own rate-limit bucket; anyone else's
    X-Forwarded-For is ignored, so a client cannot pick a fresh bucket per request."""
    env = {
        "DATABASE_URL": sqlite_url,
        "FABRIC_TRUSTED_PROXIES": trusted,
        "FABRIC_RATE_LIMIT_PER_S": "0.001",
        "FABRIC_RATE_LIMIT_BURST": "2",
    }
    configure(**env)
    with api_process(env, log_path=tmp_path / "api.log") as base:

        def post(client_address: str) -> int:
            headers = {**FETCH_HEADERS, "X-Forwarded-For": client_address}
            body = json.dumps(fixture_snapshot())
            return httpx.post(f"{base}/stem-separation", content=body, headers=headers, timeout=10).status_code

        first = [post("203.0.113.1") for _ in range(3)]
        other = post("203.0.113.2")
    assert first == [201, 201, 429]
    assert other == (201 if separate_buckets else 429)
