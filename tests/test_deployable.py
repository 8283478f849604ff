"""Deployable as shipped: the project installed non-editable (as the images install it) into a
fresh virtualenv outside the checkout migrates its database, serves, stores a snapshot and answers
/models/latest; readiness says whether the database is reachable and at this code's schema; and a
database without the schema gets 503 with the reason, never 500."""

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.db.migrate import head_revision
from app.main import create_app
from tests.support import FETCH_HEADERS, create_postgres_database, drop_postgres_database, fixture_bytes, fixture_snapshot
from tests.support.servers import ROOT, _stop, answers_healthz, free_port, wait_until


@pytest.mark.slow
def test_a_wheel_in_a_fresh_virtualenv_migrates_serves_and_stores(tmp_path):
    # From a copy of the sources: setuptools keeps build/ in the tree it builds, and a stale one leaks into wheels.
    source = tmp_path / "source"
    ignored = shutil.ignore_patterns(
        ".git", ".venv", "var", "build", "node_modules", "test-artifacts", "*.egg-info", "__pycache__"
    )
    shutil.copytree(ROOT, source, ignore=ignored)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    [wheel] = (tmp_path / "dist").glob("prime_fabric-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # The project from the wheel; its dependencies from this environment's site-packages (a plain
    # path: this environment's editable install of the project is not carried over).
    venv_site = Path(
        subprocess.check_output(
            [venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (venv_site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{elsewhere / 'fabric.sqlite3'}",
        "FABRIC_RATE_LIMIT_PER_S": "0",
        "PYTHONPATH": "",
    }
    where = subprocess.check_output(
        [venv / "bin/python", "-c", "import app, migrations; print(app.__file__, migrations.__file__)"],
        cwd=elsewhere,
        env=env,
        text=True,
    )
    assert str(ROOT) not in where and str(venv_site) in where  # the installed package, not the checkout

    upgrade = subprocess.run(
        [venv / "bin/fabric", "db", "upgrade"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
    )
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = subprocess.Popen(
        [venv / "bin/fabric", "api", "--host", "127.0.0.1", "--port", str(port)],
        cwd=elsewhere,
        env={**env, "FABRIC_PUBLIC_BASE_URLS": json.dumps([base])},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: api.poll() is None and answers_healthz(base), 60, "the installed API to answer /healthz")
        assert httpx.get(f"{base}/readyz").json() == {"status": "ready", "revision": head_revision()}
        posted = httpx.post(f"{base}/stem-separation", content=fixture_bytes("snapshot-with-ground-truth"), headers=FETCH_HEADERS)
        assert posted.status_code == 201, posted.text
        assert httpx.get(f"{base}/models/latest").status_code == 404  # nothing published yet: said, not a 500
        assert httpx.get(f"{base}/studio/prime-fabric.js").status_code == 200  # the kit travels with the package
    finally:
        _stop(api, signal.SIGINT, None)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def unmigrated_url(request, tmp_path):
    """A database that exists but was never migrated."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    from tests.conftest import require_postgres

    require_postgres()
    url = create_postgres_database(f"fabric_unmigrated_{os.getpid()}", migrate=False)
    yield url
    drop_postgres_database(url)


def test_without_the_schema_ingest_and_the_manifest_answer_503_with_the_reason(configure, unmigrated_url):
    configure(DATABASE_URL=unmigrated_url, FABRIC_RATE_LIMIT_PER_S="0")
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200  # alive
        ready = client.get("/readyz")
        assert (
            ready.status_code == 503 and "no revision" in ready.json()["detail"] and "fabric db upgrade" in ready.json()["detail"]
        )
        for response in (
            client.post("/stem-separation", json=fixture_snapshot(), headers=FETCH_HEADERS),
            client.get("/models/latest"),
        ):
            assert response.status_code == 503, response.text
            assert "fabric db upgrade" in response.json()["detail"] and response.headers["retry-after"]


def test_ready_once_migrated_and_not_while_the_database_is_unreachable(configure, db):
    with TestClient(create_app()) as client:
        assert client.get("/readyz").json() == {"status": "ready", "revision": head_revision()}
    configure(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    with TestClient(create_app()) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["detail"].startswith("database unreachable")
