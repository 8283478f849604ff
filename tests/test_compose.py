"""docker/ on paper: no container engine runs here, so this reads the Compose file, the
Dockerfiles, the Prometheus config and the Grafana files and checks that what they name exists:
`fabric` commands and their options, Python modules, settings, files, volumes, secrets, scrape
ports, and every metric the dashboard plots."""

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import typer
import yaml

from app.cli import cli
from app.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
OURS = {name: service for name, service in SERVICES.items() if "build" in service}


# What an operator sets for the variables Compose requires (${VAR:?message}).
REQUIRED = {
    "POSTGRES_PASSWORD": "pg-secret",
    "FABRIC_S3_ACCESS_KEY": "fabric",
    "FABRIC_S3_SECRET_KEY": "s3-secret",
    "FLOWER_BASIC_AUTH": "ops:pw",
}


def interpolated(value: str) -> str:
    """A Compose value as Compose makes it: ${VAR:-default} its default, ${VAR:?message} what REQUIRED sets."""
    value = re.sub(r"\$\{([A-Z0-9_]+):\?[^}]*\}", lambda m: REQUIRED[m.group(1)], str(value))
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value).replace("$$", "$")


def environment(service: dict) -> dict[str, str]:
    return {name: interpolated(value) for name, value in (service.get("environment") or {}).items()}


def dockerfile_command(service: dict) -> list[str]:
    text = (ROOT / service["build"]["dockerfile"]).read_text()
    return json.loads(re.findall(r"^CMD (\[.*\])$", text, re.MULTILINE)[-1])


def check_command(argv: list[str], env: dict[str, str]) -> None:
    """argv names a real `fabric` command with real options, or a Celery worker of our app."""
    if argv[:2] == ["sh", "-c"]:
        argv = shlex.split(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], argv[2]))
    if argv[0] == "fabric":
        group = typer.main.get_command(cli)
        words = argv[1:]
        while hasattr(group, "commands"):  # a group of commands
            assert words and words[0] in group.commands, f"no `fabric {' '.join(argv[1:])}` command"
            group, words = group.commands[words[0]], words[1:]
        options = {opt for param in group.params for opt in getattr(param, "opts", [])}
        assert {word for word in words if word.startswith("--")} <= options, (argv, options)
    else:
        assert argv[:3] == ["celery", "-A", "workers.celery_app"], argv
        assert (ROOT / "workers" / "celery_app.py").exists() and "worker" in argv


@pytest.mark.parametrize("name", sorted(OURS))
def test_our_services_build_run_and_configure_what_exists(name, monkeypatch):
    service = OURS[name]
    assert (ROOT / service["build"]["dockerfile"]).exists() and service["build"]["context"] == ".."
    env = environment(service)
    image_env = dict(
        re.findall(r"(\w+)=(\S+)", (ROOT / service["build"]["dockerfile"]).read_text().split("ENV", 1)[1].splitlines()[0])
    )
    check_command(service.get("command") or dockerfile_command(service), image_env | env)
    # Every variable is a setting (by its environment name) and every value is one it accepts.
    names = {f"FABRIC_{field.upper()}" for field in Settings.model_fields} | {
        alias for field in Settings.model_fields.values() if field.validation_alias for alias in field.validation_alias.choices
    }
    assert set(env) <= names, set(env) - names
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    settings = Settings(_env_file=None)
    assert settings.artifacts_url == "s3://fabric-artifacts/prime-fabric" and settings.artifacts_secret_access_key
    for dependency in service.get("depends_on", {}):
        assert dependency in SERVICES


def test_volumes_secrets_and_the_bucket_line_up():
    declared_volumes, declared_secrets = set(COMPOSE["volumes"]), set(COMPOSE["secrets"])
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), (name, source)
            else:
                assert source in declared_volumes, (name, source)
        assert set(service.get("secrets", [])) <= declared_secrets, name
    bucket = "fabric-artifacts"
    assert f"store/{bucket}" in " ".join(SERVICES["bucket"]["entrypoint"])
    assert environment(OURS["api"])["FABRIC_ARTIFACTS_URL"].startswith(f"s3://{bucket}/")
    assert environment(OURS["api"])["FABRIC_ARTIFACTS_ACCESS_KEY_ID"] == environment(SERVICES["minio"])["MINIO_ROOT_USER"]
    assert "--appendonly" in SERVICES["redis"]["command"]
    assert {"prometheus", "grafana"} <= {name for name, s in SERVICES.items() if "monitoring" in s.get("profiles", [])}


def test_prometheus_scrapes_the_api_with_a_token_and_the_workers_on_their_port():
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["api"]
    assert api["authorization"]["type"] == "Bearer"
    secret = Path(api["authorization"]["credentials_file"]).name
    assert secret in SERVICES["prometheus"]["secrets"]
    assert api["dns_sd_configs"][0]["names"] == ["api"] and api["dns_sd_configs"][0]["port"] == 8000
    assert "8000" in dockerfile_command(OURS["api"])
    worker = jobs["worker"]["dns_sd_configs"][0]
    for name in worker["names"]:
        assert environment(OURS[name])["FABRIC_WORKER_METRICS_PORT"] == str(worker["port"])
    mounted = {v.split(":")[1] for v in SERVICES["prometheus"]["volumes"]}
    assert "/etc/prometheus/prometheus.yml" in mounted


def test_the_dashboard_plots_only_metrics_the_service_exports():
    from prometheus_client import REGISTRY

    import workers.observability  # noqa: F401  (registers the worker's metrics)
    from app import metrics

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    families = [*REGISTRY.collect(), *metrics.ServiceState().describe()]
    exported = {family.name + suffix for family in families for suffix in suffixes[family.type]}
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "prime-fabric.json").read_text())
    plotted = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bfabric_\w+", target["expr"])
    }
    assert len(plotted) >= 12
    assert plotted <= exported, plotted - exported
    provider = yaml.safe_load((DOCKER / "grafana" / "provisioning" / "dashboards" / "prime-fabric.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] in {v.split(":")[1] for v in SERVICES["grafana"]["volumes"]}


def test_safe_defaults_pinned_images_no_default_passwords_no_trusted_proxies():
    text = (DOCKER / "compose.yaml").read_text()
    for name, service in SERVICES.items():
        if "image" in service:
            image, _, tag = service["image"].rpartition(":")
            assert image and tag and tag != "latest", (name, service["image"])
    # Every password, secret key and login is required from the operator: no default to forget.
    for variable in ("POSTGRES_PASSWORD", "FABRIC_S3_SECRET_KEY", "FABRIC_S3_ACCESS_KEY", "FLOWER_BASIC_AUTH"):
        assert f"${{{variable}:?" in text and f"${{{variable}:-" not in text, variable
    assert "change-me" not in text and "POSTGRES_PASSWORD: fabric" not in text
    for service in OURS.values():  # nothing in the file stands in front of the API
        assert "FABRIC_TRUSTED_PROXIES" not in (service.get("environment") or {})
    assert SERVICES["api"]["ports"] == ["${FABRIC_API_BIND:-127.0.0.1}:8000:8000"]
    assert not SERVICES["worker"].get("ports")  # its metrics port stays on Compose's network
    # Secrets from files: Compose 1.29 has no `environment:` secrets (a v2-only form).
    assert all(set(secret) == {"file"} for secret in COMPOSE["secrets"].values())
    assert "readyz" in " ".join(SERVICES["api"]["healthcheck"]["test"])


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose 1.29 is not installed")
def test_compose_1_29_accepts_the_file_and_refuses_to_start_without_its_passwords(tmp_path):
    env = {"PATH": os.environ["PATH"], **REQUIRED}
    command = ["docker-compose", "-f", str(DOCKER / "compose.yaml"), "--profile", "monitoring", "config", "--quiet"]
    accepted = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert accepted.returncode == 0, accepted.stderr
    refused = subprocess.run(command, env={**env, "POSTGRES_PASSWORD": ""}, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "set POSTGRES_PASSWORD" in refused.stderr
