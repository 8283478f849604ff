"""docker/ on paper: no container engine runs here, so this reads the Compose file, the
Dockerfiles, the Prometheus config and the Grafana files and checks that what they name exists:
`fabric` commands and their options, Python modules, settings, files, volumes, secrets, scrape
ports, and every metric the dashboard plots."""

import json
import re
import shlex
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


def interpolated(value: str) -> str:
    """A Compose value with ${VAR:-default} as its default would make it (none is set here)."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value)).replace("$$", "$")


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
