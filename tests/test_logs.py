"""The API's logs, from a real server process: one JSON object a line; every request gets an id
(the client's X-Request-ID when it is a sane one), sent back and carried by its access line and
by whatever else is logged while it is handled."""

import json
import socket
import time

import httpx

from tests.support import FETCH_HEADERS
from tests.support.servers import api_process


def log_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]  # every line is JSON, or this fails


def test_each_request_has_an_id_its_log_lines_carry(configure, sqlite_url, tmp_path):
    configure(DATABASE_URL=sqlite_url)
    env = {"DATABASE_URL": sqlite_url, "FABRIC_LOG_LEVEL": "info", "FABRIC_REQUEST_BODY_TIMEOUT_S": "1"}
    log = tmp_path / "api.log"
    with api_process(env, log_path=log) as base:
        given = httpx.post(
            f"{base}/stem-separation", content=b"{not json", headers={**FETCH_HEADERS, "X-Request-ID": "studio-42"}
        )
        made = httpx.get(f"{base}/healthz")
        hostile = httpx.get(f"{base}/healthz", headers={"X-Request-ID": "x" * 65})
        forged = httpx.get(f"{base}/healthz", headers={"X-Request-ID": 'a", "level": "critical'})
        # A body that stops coming: the 408 is logged as a warning, inside the request's context.
        with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1]))) as slow:
            slow.sendall(
                b"POST /stem-separation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-Request-ID: slow-body\r\nContent-Length: 1000\r\n\r\n{"
            )
            assert b" 408 " in slow.recv(4096)
        time.sleep(0.3)  # the access lines are written as the answers finish
    assert given.status_code == 400 and given.headers["x-request-id"] == "studio-42"
    generated = made.headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    assert len(hostile.headers["x-request-id"]) == 32 and len(forged.headers["x-request-id"]) == 32

    lines = log_lines(log)
    access = {line["request_id"]: line for line in lines if line["logger"] == "prime_fabric.access"}
    assert access["studio-42"] | {"duration_ms": 0} == {
        "time": access["studio-42"]["time"],
        "level": "info",
        "logger": "prime_fabric.access",
        "message": access["studio-42"]["message"],
        "method": "POST",
        "path": "/stem-separation",
        "status": 400,
        "duration_ms": 0,
        "request_id": "studio-42",
    }
    assert access[generated]["status"] == 200 and access[generated]["path"] == "/healthz"
    (warning,) = [line for line in lines if line["level"] == "warning"]
    assert warning["request_id"] == "slow-body" and warning["message"].startswith("POST /stem-separation from 127.0.0.1")
    assert access["slow-body"]["status"] == 408
