"""End to end: the snapshots of songs played by sampled instruments, posted to the API, land in
the real Postgres; a run started over Celery is carried out by a real worker process on the
real Redis: dataset, training of a tiny model, metrics beside the baselines on the test split,
the gate, TF.js weights, all recorded on the run."""

import json
import time

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.datasets.models import Dataset
from app.db.engine import session_scope
from app.main import create_app
from app.stem_models.models import ModelPromotion, StemModel
from app.stem_models.service import current_champion
from app.training_runs.flows import start_run
from app.training_runs.models import TrainingRun
from app.training_runs.schemas import RunParameters
from tests.support import FETCH_HEADERS
from tests.support.servers import worker_process
from tests.tfjs import serve_directory, tfjs_predict
from training.contract import STEMS
from training.judgement import Judgement
from training.metrics import BASELINES
from training.model import predict
from training.shards import load_split

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

EPOCHS = 80


@pytest.fixture
def pipeline_env(configure, postgres_url, redis_url, tmp_path):
    env = {
        "DATABASE_URL": postgres_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "FABRIC_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "FABRIC_RATE_LIMIT_PER_S": "0",
    }
    configure(**env)
    from sqlalchemy import delete

    from app.snapshots.models import Snapshot

    with session_scope() as session:
        for table in (ModelPromotion, StemModel, TrainingRun, Dataset, Snapshot):
            session.execute(delete(table))
    return env


def wait_for_run(run_id: int, timeout_s: float) -> TrainingRun:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_scope() as session:
            run = session.get(TrainingRun, run_id)
            if run.status in ("succeeded", "failed", "cancelled"):
                session.expunge(run)
                return run
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} did not finish in {timeout_s} s")


def test_posted_snapshots_become_a_trained_evaluated_run(pipeline_env, tmp_path, instrument_snapshots):
    client = TestClient(create_app())
    for snapshot in instrument_snapshots:
        assert client.post("/stem-separation", content=json.dumps(snapshot), headers=FETCH_HEADERS).status_code == 201
    count = len(instrument_snapshots)

    with session_scope() as session:
        run_id = start_run(RunParameters(run_label="e2e", epochs=EPOCHS, candidates=["tiny"]), db_session=session).id
    with worker_process(pipeline_env, queue="cpu", log_path=tmp_path / "worker.log"):
        run = wait_for_run(run_id, timeout_s=300)

    assert run.status == "succeeded", (run.error, (tmp_path / "worker.log").read_text()[-3000:])
    assert run.stage == "done" and run.worker
    assert run.epoch == len(run.history) and 1 <= run.epoch <= EPOCHS
    assert all({"loss", "val_loss", "learning_rate", "vocals_error_db", "val_sub_error_db"} <= set(h) for h in run.history)
    with session_scope() as session:
        dataset = session.get(Dataset, run.dataset_id)
        dataset_key = dataset.artifact_key
        assert dataset.train_count + dataset.validation_count + dataset.test_count == count
        assert min(dataset.validation_count, dataset.test_count) > 0
        assert dataset.manifest["stem_coverage"] == {stem: count for stem in dataset.manifest["encoding"]["stems"]}
        assert dataset.manifest["audit"]["duplicate_content_skipped"] == 0
    # The run's judgement, read back in its one typed shape: every baseline, the margin, the choice.
    judgement = Judgement.model_validate(run.metrics)
    assert set(judgement.baselines) == set(BASELINES) and judgement.audio is None
    assert judgement.model.snapshots == dataset.test_count
    # The candidates: tiny and ridge, each judged on validation and test; the predictor is one of them.
    choice = judgement.choice
    assert set(choice.candidates) == {"tiny", "ridge"} and choice.predictor.name in choice.candidates
    faced = choice.candidates[choice.predictor.name]
    assert judgement.model.level_error_db == pytest.approx(faced.test_error_db, abs=1e-6)
    # Multitracks bring ground truth and no corrections: nothing for corrections to have taught.
    assert judgement.corrections.corrections_only_snapshots == 0 and judgement.corrections.held_out_cells == 0

    # Published: TF.js weights that load in @tensorflow/tfjs 4.22 and predict what Keras does.
    with session_scope() as session:
        published = session.scalar(select(StemModel).where(StemModel.run_id == run_id))
        session.expunge(published)
        assert current_champion(db_session=session).id == published.id
    assert published.decision == "published", published.reason
    manifest = published.manifest
    assert manifest["stems"] == list(STEMS) and manifest["dataset"]["hash"]
    assert manifest["float16_max_abs_error"] < 0.5  # dB
    assert Judgement.model_validate(manifest["metrics"]) == judgement and judgement.margin.high_db < 0
    assert manifest["predictor"] == {"name": "tiny", "kind": "transformer"}
    directory = tmp_path / "artifacts" / published.artifact_key  # the local store's folder
    test = load_split(tmp_path / "artifacts" / dataset_key, "test")
    expected = predict(keras.models.load_model(directory / "model.keras"), test.features)
    with serve_directory(directory) as base:
        got, info = tfjs_predict(f"{base}/{manifest['model_json']['float32']}", test.features, tmp_path)
    assert info["tfjs"] == "4.22.0"
    for index, stem in enumerate(manifest["stems"]):
        assert np.abs(got[:, index] - expected[:, STEMS.index(stem)]).max() < 1e-3, stem

    # A second, deliberately poor run (one epoch at a negligible learning rate) must not replace
    # the champion: it is kept, rejected, with the figures that decided it.
    with session_scope() as session:
        poor = RunParameters(run_label="poor", epochs=1, learning_rate=1e-7, candidates=["tiny"])
        poor_id = start_run(poor, db_session=session).id
    with worker_process(pipeline_env, queue="cpu", log_path=tmp_path / "worker2.log"):
        poor = wait_for_run(poor_id, timeout_s=300)
    assert poor.status == "succeeded", poor.error
    with session_scope() as session:
        rejected = session.scalar(select(StemModel).where(StemModel.run_id == poor_id))
        # Its tiny model never faced the gate (validation chose ridge); ridge does worse than
        # the champion on the champion's test data, where the champion beat it by the gate's margin.
        assert rejected.manifest["predictor"] == {"name": "ridge", "kind": "ridge"}
        assert rejected.decision == "rejected" and "not the champion on its test data" in rejected.reason
        assert current_champion(db_session=session).id == published.id
