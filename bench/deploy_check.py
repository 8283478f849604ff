"""The deployment check: docker/compose.yaml brought up for real and driven as an operator would.

Builds the project's images (on the official python:3.11-slim where it can be pulled, else on a
stand-in made here from Debian's packages by debootstrap, with Postgres, Redis and an S3 store
(moto, for MinIO) as stand-ins too: bench/deploy/), brings the stack up with Compose (v2 or
Debian's docker-compose 1.29), waits for the API's /readyz, sends Studio's snapshots through the
API container, runs a tiny training on a worker container, kills that container mid-run and
watches the run finish on a second one, then fetches /models/latest and a model file from the
bucket through the API. Prints build times, image sizes and the time to a published model.
Needs root (dockerd, debootstrap) and a few GB of disk; not part of `make test`.

    .venv/bin/python bench/deploy_check.py [--keep]
"""

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "bench" / "deploy"
WORK = ROOT / "var" / "deploy-check"
PROJECT = "pfcheck"
API = "http://127.0.0.1:8000"
STANDINS = ("postgres:15", "redis:7", "s3:moto")


def run(*command: str, timeout: float = 1800, **kwargs) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def timed(what: str, figures: dict, *command: str, **kwargs) -> str:
    started = time.monotonic()
    out = run(*command, **kwargs)
    figures[what] = time.monotonic() - started
    print(f"{what}: {figures[what]:.0f} s", flush=True)
    return out


def ensure_dockerd() -> None:
    if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.Popen(["dockerd"], stdout=open(WORK / "dockerd.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(60):
        if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            return
        time.sleep(1)
    raise SystemExit(f"dockerd did not start: see {WORK / 'dockerd.log'}")


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def build_standins(figures: dict) -> None:
    """Debian bookworm by debootstrap, imported; on it the Python, Postgres, Redis and S3 stand-ins."""
    if not image_exists("prime-fabric-standin/debian:bookworm"):
        rootfs = WORK / "rootfs"
        if not (rootfs / "usr/bin/python3").exists():
            timed(
                "debootstrap",
                figures,
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,python3-pip,ca-certificates",
                "bookworm",
                str(rootfs),
                "http://deb.debian.org/debian",
            )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "-", "prime-fabric-standin/debian:bookworm"], stdin=tar.stdout, check=True, capture_output=True
        )
        tar.wait()
    with tempfile.TemporaryDirectory() as context:
        for path in DEPLOY.glob("standin-*"):
            shutil.copy(path, context)
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", context)
        for name in ("python:3.11", *STANDINS):
            kind = name.split(":")[0]
            timed(
                f"build stand-in {name}",
                figures,
                "docker",
                "build",
                "-q",
                "-t",
                f"prime-fabric-standin/{name}",
                "-f",
                f"{context}/standin-{kind}.Dockerfile",
                context,
            )


def compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise SystemExit("neither `docker compose` nor docker-compose is installed")


def wait_for(what: str, condition, timeout_s: float, interval_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = condition()
            if value:
                return value
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()

    from tests.support.reference_songs import STUDIO_DIR
    from training.synthetic import synthetic_snapshots

    figures: dict[str, float] = {}
    ensure_dockerd()
    official = subprocess.run(["docker", "pull", "-q", "python:3.11-slim"], capture_output=True, timeout=120).returncode == 0
    files = ["-f", str(ROOT / "docker/compose.yaml"), "-f", str(DEPLOY / "compose.check.yaml")]
    if not official:
        print("python:3.11-slim cannot be pulled here: building stand-ins from Debian's packages", flush=True)
        build_standins(figures)
        files += ["-f", str(DEPLOY / "compose.standin.yaml")]
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "FABRIC_S3_ACCESS_KEY": "fabric",
        "FABRIC_S3_SECRET_KEY": secrets.token_urlsafe(16),
        "FLOWER_BASIC_AUTH": f"ops:{secrets.token_urlsafe(12)}",
    }
    compose = [*compose_command(), "-p", PROJECT, *files]
    print(
        f"compose: {' '.join(compose[: compose.index('-p')])} ({run(*compose_command(), 'version').splitlines()[0]})", flush=True
    )
    run(*compose, "down", "-v", "--remove-orphans", env=env)
    timed("build the API image", figures, *compose, "build", "api", env=env)
    timed("build the worker image", figures, *compose, "build", "worker", env=env)
    sizes = {}
    for service in ("api", "worker"):
        image = f"{PROJECT}_{service}" if "docker-compose" in compose[0] else f"{PROJECT}-{service}"
        sizes[service] = int(run("docker", "image", "inspect", "-f", "{{.Size}}", image).strip()) / 1e6
        print(f"{service} image: {sizes[service]:.0f} MB", flush=True)

    started = time.monotonic()
    run(*compose, "up", "-d", "--scale", "worker=2", "api", "worker", env=env, timeout=600)
    wait_for("the API to be ready", lambda: httpx.get(f"{API}/readyz", timeout=5).status_code == 200, 300)
    figures["up to ready"] = time.monotonic() - started
    print(f"stack up, API ready: {figures['up to ready']:.0f} s", flush=True)

    headers = {"Content-Type": "application/json", "X-Prime-Fabric-Channel": "stem-separation"}
    studio = sorted(STUDIO_DIR.glob("r*[0-9]s*.json"))
    studio = [p for p in studio if not p.name.endswith(".run.json")]
    stored = 0
    with httpx.Client(base_url=API, timeout=30) as client:
        for body in [p.read_bytes() for p in studio] + [json.dumps(s).encode() for s in synthetic_snapshots(80, seed=11)]:
            response = client.post("/stem-separation", content=body, headers=headers)
            assert response.status_code == 201, response.text
            stored += 1
    print(f"{stored} snapshots stored through the API container ({len(studio)} of them Studio's own)", flush=True)

    out = run(*compose, "exec", "-T", "api", "fabric", "token", "create", "--name", "deploy-check", "--role", "operator", env=env)
    token = out.strip().splitlines()[-1]
    operator = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    response = httpx.post(
        f"{API}/runs", json={"runLabel": "deploy-check", "epochs": 25, "batchSize": 4, "candidates": ["tiny"]}, headers=operator
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]

    def view() -> dict:
        return httpx.get(f"{API}/runs/{run_id}", headers=operator, timeout=10).json()

    first = wait_for("epoch 3 on a worker", lambda: (v := view())["status"] == "running" and (v["epoch"] or 0) >= 3 and v, 600)
    containers = run(
        "docker",
        "ps",
        "-q",
        "--filter",
        f"label=com.docker.compose.project={PROJECT}",
        "--filter",
        "label=com.docker.compose.service=worker",
    ).split()
    hostnames = {c: run("docker", "inspect", "-f", "{{.Config.Hostname}}", c).strip() for c in containers}
    [victim] = [c for c, host in hostnames.items() if first["worker"].endswith("@" + host)]
    run("docker", "kill", victim)
    print(f"run {run_id} at epoch {first['epoch']} on {first['worker']}: container {victim} killed", flush=True)
    final = wait_for("the run to end", lambda: (v := view())["status"] not in ("queued", "running") and v, 900, 2)
    figures["run to published"] = time.monotonic() - started
    print(
        f"run {run_id} {final['status']} on {final['worker']} (resumed from epoch {final['resumedFromEpoch']}) "
        f"{figures['run to published']:.0f} s after POST /runs",
        flush=True,
    )
    assert final["status"] == "succeeded" and final["worker"] != first["worker"], final

    latest = httpx.get(f"{API}/models/latest")
    if latest.status_code == 404:  # the gate rejected a 25-epoch tiny model: promote it by hand, as an operator may
        model = httpx.get(f"{API}/models", headers=operator).json()[0]
        promoted = httpx.post(
            f"{API}/models/{model['id']}/promote", json={"force": True, "reason": "deploy check"}, headers=operator
        )
        assert promoted.status_code == 200, promoted.text
        latest = wait_for("the promotion", lambda: (r := httpx.get(f"{API}/models/latest")).status_code == 200 and r, 30)
    manifest = latest.json()
    file = manifest["files"][0]
    fetched = httpx.get(file["url"].replace("http://localhost:8000", API))
    import hashlib

    assert fetched.status_code == 200 and hashlib.sha256(fetched.content).hexdigest() == file["sha256"]
    print(
        f"/models/latest: {manifest['version']}; {file['path']} ({len(fetched.content)} bytes) from the bucket, SHA-256 matches"
    )

    print(
        "\nfigures: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in figures.items())
        + ", "
        + ", ".join(f"{k} image {v:.0f} MB" for k, v in sizes.items())
    )
    if not args.keep:
        run(*compose, "down", "-v", env=env)


if __name__ == "__main__":
    main()
