"""Operators over REST: start a run (a real worker on Redis carries it out), follow it, cancel
one, read datasets and the quarantine."""

import json
import time

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import delete

from app.auth.models import ApiToken
from app.auth.service import create_token
from app.datasets.models import Dataset
from app.db.engine import session_scope
from app.main import create_app
from app.quarantine.models import QuarantinedItem
from app.snapshots.models import Snapshot
from app.stem_models.models import ModelPromotion, StemModel
from app.training_runs.models import TrainingRun
from app.training_runs.schemas import RunParameters
from tests.support import FETCH_HEADERS
from tests.support.servers import worker_process
from training.judgement import Judgement
from training.synthetic import synthetic_snapshots

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def operator_client(configure, postgres_url, redis_url, tmp_path):
    env = {
        "DATABASE_URL": postgres_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "FABRIC_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "FABRIC_RATE_LIMIT_PER_S": "0",
    }
    configure(**env)
    with session_scope() as session:
        for table in (ModelPromotion, StemModel, TrainingRun, Dataset, Snapshot, QuarantinedItem, ApiToken):
            session.execute(delete(table))
        token, _ = create_token("ops", "operator", db_session=session)
    client = TestClient(create_app())
    client.headers["Authorization"] = f"Bearer {token}"
    return client, env


def follow(client, run_id: int, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = client.get(f"/runs/{run_id}").json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return run
        time.sleep(0.5)
    raise TimeoutError(run)


@pytest.mark.parametrize(
    "body",
    [
        {"epochs": 0},
        {"testShare": 0.6},
        {"trainRatio": 0.8},
        {"modelSize": "huge"},
        {"candidates": ["ridge"]},
        {"learningRate": -1},
        {"runLabel": "../../etc"},
        {"unknown": 1},
        {"batchSize": "32"},
    ],
)
def test_run_parameters_are_validated(operator_client, body):
    client, _ = operator_client
    response = client.post("/runs", json=body)
    assert response.status_code == 422, response.text


def test_start_follow_and_cancel_runs_over_rest(operator_client, tmp_path):
    client, env = operator_client
    for snapshot in synthetic_snapshots(100, seed=41):
        client.post("/stem-separation", content=json.dumps(snapshot), headers=FETCH_HEADERS)
    with worker_process(env, queue="cpu", log_path=tmp_path / "worker.log"):
        started = client.post("/runs", json={"runLabel": "rest", "epochs": 8, "candidates": ["tiny"]})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        assert started.headers["location"].endswith(f"/runs/{run_id}")
        busy = client.post("/runs", json={"candidates": ["tiny"]})
        assert busy.status_code == 409 and str(run_id) in busy.json()["detail"]

        run = follow(client, run_id)
        assert run["status"] == "succeeded", (run["error"], (tmp_path / "worker.log").read_text()[-2000:])
        assert run["epoch"] == len(run["history"]) and run["worker"] and run["datasetId"]
        judgement = Judgement.model_validate(run["metrics"])  # the API serves the run's judgement in its one shape
        assert {"ridge", "train_median", "silence", "mix_copy"} <= set(judgement.baselines)
        assert judgement.margin.reference in judgement.baselines and judgement.predictor.name in ("tiny", "ridge")

        second = client.post("/runs", json={"runLabel": "cancel-me", "epochs": 500, "batchSize": 4, "candidates": ["tiny"]})
        assert second.status_code == 202
        second_id = second.json()["id"]
        deadline = time.monotonic() + 120
        while (client.get(f"/runs/{second_id}").json()["epoch"] or 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.post(f"/runs/{second_id}/cancel").status_code == 202
        cancelled = follow(client, second_id, timeout_s=60)
        assert cancelled["status"] == "cancelled" and cancelled["epoch"] < 500
        assert client.post(f"/runs/{second_id}/cancel").status_code == 409

    listed = client.get("/runs").json()
    assert [r["id"] for r in listed] == [second_id, run_id]
    dataset = client.get(f"/datasets/{run['datasetId']}").json()
    assert dataset["manifest"]["counts"]["total"] == 100 and "audit" in dataset["manifest"]
    assert client.get("/runs/999999").status_code == 404


def test_quarantine_is_paged_and_filterable(operator_client):
    client, _ = operator_client
    for body in (b"{", b"[]", b'{"id": 1}', b'{"id": 2}'):
        client.post("/stem-separation", content=body, headers=FETCH_HEADERS)
    everything = client.get("/quarantine").json()
    assert len(everything) == 4
    malformed = client.get("/quarantine", params={"reasonType": "malformed_json"}).json()
    assert [q["reasonType"] for q in malformed] == ["malformed_json"]
    unprocessable = client.get("/quarantine", params={"httpStatus": 422}).json()
    assert len(unprocessable) == 2
    page_one = client.get("/quarantine", params={"limit": 2}).json()
    page_two = client.get("/quarantine", params={"limit": 2, "beforeId": page_one[-1]["id"]}).json()
    assert [q["id"] for q in page_one + page_two] == [q["id"] for q in everything]
    assert client.get(f"/quarantine/{everything[0]['id']}").json()["reasons"]
    assert client.get("/quarantine", headers={"Authorization": ""}).status_code == 401


def test_runs_started_at_the_same_moment_get_one_slot(operator_client, tmp_path):
    """Twelve POST /runs at once across four API processes: one run is queued, the others get
    409, and the database holds exactly one active run (its unique partial index, not only the
    check before the insert, keeps the slot single)."""
    from sqlalchemy import func, select

    from tests.support.servers import api_process, post_at_once

    client, env = operator_client
    with api_process(env, workers=4, log_path=tmp_path / "api.log") as base:
        answers = post_at_once(
            f"{base}/runs",
            json.dumps({"runLabel": "race", "epochs": 1}).encode(),
            {**client.headers, "Content-Type": "application/json"},
            12,
        )
    assert sorted(a.status_code for a in answers) == [202] + [409] * 11, [a.text for a in answers]
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(TrainingRun).where(TrainingRun.status == "queued")) == 1


def test_the_database_refuses_a_second_active_run_when_the_check_is_raced(operator_client, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from app.training_runs import flows, service

    with session_scope() as session:
        first = service.create_run(RunParameters(run_label="first"), db_session=session).id
    with pytest.raises(IntegrityError), session_scope() as session:
        service.create_run(RunParameters(run_label="second"), db_session=session)
    # start_run's own check raced (it saw no active run): the insert is refused, and the refusal names the run.
    real_get_active, looks = service.get_active, []

    def raced_get_active(*, db_session):
        looks.append(db_session)
        return None if len(looks) == 1 else real_get_active(db_session=db_session)

    monkeypatch.setattr(service, "get_active", raced_get_active)
    with pytest.raises(flows.RunInProgress) as refused, session_scope() as session:
        flows.start_run(RunParameters(run_label="third"), db_session=session)
    assert refused.value.run_id == first and len(looks) == 2


def test_a_candidate_keeps_its_own_hyperparameters_unless_the_run_sets_them_and_the_seed_is_recorded():
    from app.training_runs.stages import training_overrides
    from training.candidates import candidate_config
    from training.model import CANDIDATES, ModelConfig

    own = candidate_config("small", 7, training_overrides(RunParameters(candidates=["small"], epochs=7)))
    assert (own.batch_size, own.learning_rate, own.epochs) == (
        CANDIDATES["small"].batch_size,
        CANDIDATES["small"].learning_rate,
        7,
    )
    assert CANDIDATES["small"].learning_rate != ModelConfig().learning_rate
    chosen = candidate_config("mlp", 7, training_overrides(RunParameters(batch_size=8, learning_rate=1e-4)))
    assert (chosen.batch_size, chosen.learning_rate, chosen.architecture) == (8, 1e-4, "mlp")
    assert RunParameters(seed=3).model_dump()["seed"] == 3 and RunParameters().seed == 0


def test_a_run_names_its_candidates_and_model_size_still_means_one():
    assert RunParameters().candidates == ["small", "mlp"]
    assert RunParameters.model_validate({"modelSize": "tiny"}).candidates == ["tiny"]
    assert RunParameters.model_validate({"candidates": ["mlp", "full"]}).model_dump()["candidates"] == ["mlp", "full"]
    for wrong in ({"candidates": []}, {"candidates": ["tiny", "tiny"]}, {"candidates": ["ridge"]}, {"candidates": "tiny"}):
        with pytest.raises(ValidationError):
            RunParameters.model_validate(wrong)
