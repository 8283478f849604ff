"""The `fabric` verbs an ML engineer runs: synth, sanitize, dataset, train, evaluate."""

import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.main import create_app
from tests.support import FETCH_HEADERS

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_pipeline_verbs_from_synthetic_data_to_metrics(configure, sqlite_url, tmp_path):
    configure(DATABASE_URL=sqlite_url, FABRIC_RATE_LIMIT_PER_S="0", FABRIC_ARTIFACTS_DIR=str(tmp_path / "artifacts"))
    snapshots = tmp_path / "snapshots.jsonl"
    invoke("synth", "--count", "60", "--seed", "3", "--out", str(snapshots))
    lines = snapshots.read_text().splitlines()
    assert len(lines) == 60

    sanitized = tmp_path / "sanitized.jsonl"
    result = invoke("sanitize", str(snapshots), "--out", str(sanitized))
    assert "60 accepted, 0 rejected" in result.output
    first = json.loads(sanitized.read_text().splitlines()[0])
    assert first["status"] == "accepted" and first["rulesFired"]["transients_summarised"] > 0

    client = TestClient(create_app())
    for line in lines:
        assert client.post("/stem-separation", content=line, headers=FETCH_HEADERS).status_code in (200, 201)

    built = json.loads(invoke("dataset", "--runLabel", "cli", "--test-share", "0.2").output)
    assert built["total"] >= 60 and built["train"] > built["test"] > 0 and built["validation"] > 0
    dataset_dir = built["folder"]
    assert dataset_dir == str(tmp_path / "artifacts" / built["key"])

    model_dir = tmp_path / "model"
    result = invoke(
        "train",
        "--dataset-dir",
        dataset_dir,
        "--output-dir",
        str(model_dir),
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--learning-rate",
        "0.003",
        "--candidate",
        "tiny",
    )
    assert "3 epochs" in result.output
    result = invoke("evaluate", "--dataset-dir", dataset_dir, "--model-dir", str(model_dir))
    assert all(name in result.output for name in ("model", "ridge", "train_median", "mix_copy", "95% interval"))
    assert "snapshots whose only label is users' corrections" in result.output


def test_serve_stops_its_worker_when_it_is_terminated(tmp_path):
    """`fabric serve` (what `make run` starts) under SIGTERM, as from a service manager or
    `kill`: the API shuts down and the Celery worker it started goes with it."""
    import os
    import signal
    import subprocess
    import sys

    import psutil

    from tests.support.servers import ROOT, answers_healthz, free_port, wait_until

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/fabric.db",
        "FABRIC_EMBEDDED_BROKER_DIR": str(tmp_path / "broker"),
    }
    serve = subprocess.Popen(
        [str(Path(sys.executable).parent / "fabric"), "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: list[psutil.Process] = []
    try:
        wait_until(lambda: answers_healthz(f"http://127.0.0.1:{port}"), 60, "fabric serve to answer /healthz")
        children = psutil.Process(serve.pid).children(recursive=True)
        assert any("celery" in " ".join(child.cmdline()) for child in children)
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        _, alive = psutil.wait_procs(children, timeout=30)
        assert alive == [], f"still running after fabric serve exited: {[p.cmdline() for p in alive]}"
    finally:  # nothing left behind, even when the test fails
        for process in children:
            if process.is_running():
                process.kill()
        serve.kill()


def test_fabric_run_refuses_a_second_active_run_like_the_api(configure, sqlite_url, tmp_path):
    """One run at a time, whichever way a run is started: `fabric run` and `POST /runs` share
    training_runs/flows.start_run (no worker here: the first run stays queued)."""
    from sqlalchemy import delete, func, select

    from app.auth.service import create_token
    from app.db.engine import session_scope
    from app.training_runs.models import TrainingRun

    configure(DATABASE_URL=sqlite_url, FABRIC_EMBEDDED_BROKER_DIR=str(tmp_path / "broker"))
    with session_scope() as session:
        session.execute(delete(TrainingRun))
        token, _ = create_token("ops", "operator", db_session=session)
    first = invoke("run", "--run-label", "first", "--candidates", "tiny", "--no-wait")
    assert "queued" in first.output

    second = runner.invoke(cli, ["run", "--runLabel", "second", "--no-wait"])
    assert second.exit_code == 1 and "not started: run" in second.output and "is queued" in second.output
    api = TestClient(create_app()).post("/runs", json={"candidates": ["tiny"]}, headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 409 and "is queued" in api.json()["detail"]
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(TrainingRun)) == 1


def test_fabric_run_follows_the_run_to_its_end_and_prints_its_judgement(configure, sqlite_url, tmp_path):
    """`fabric run` waits for the run and prints the judgement the evaluation stage stored. A
    thread stands in for the workers here: it ends the run with a judgement (the workers' own
    stages are tested in test_pipeline.py and test_runs_api.py)."""
    import threading
    import time

    from sqlalchemy import delete, select

    from app.db.engine import session_scope
    from app.training_runs.models import TrainingRun
    from tests.support.splits import level_data
    from training.judgement import judge
    from training.metrics import baseline_reports

    configure(DATABASE_URL=sqlite_url, FABRIC_EMBEDDED_BROKER_DIR=str(tmp_path / "broker"))
    with session_scope() as session:
        session.execute(delete(TrainingRun))
    train, validation, test = level_data(30, 60), level_data(31, 20), level_data(32, 20)
    reports = baseline_reports(train, validation, test)
    judgement = judge({"model": reports["ridge"]} | reports, train)

    def end_the_run() -> None:
        for _ in range(100):
            with session_scope() as session:
                run = session.scalar(select(TrainingRun).limit(1))
                if run is not None:
                    run.status, run.stage, run.metrics = "succeeded", "done", judgement.stored_form()
                    return
            time.sleep(0.1)

    ender = threading.Thread(target=end_the_run)
    ender.start()
    result = invoke("run", "--run-label", "followed", "--candidates", "tiny")
    ender.join()
    assert "succeeded  done" in result.output
    margin = judgement.margin
    assert f"model - {margin.reference}: {margin.difference_db:+.2f} dB" in result.output
    assert "snapshots whose only label is users' corrections" in result.output
