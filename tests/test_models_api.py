"""The model registry over HTTP: who may do what, the latest-weights manifest Studio polls
(ETag/304, CORS, caching), immutable files that only the manifest names, promotion and
rollback, and Studio's own path through it all in @tensorflow/tfjs 4.22 on Node against the
running server."""

import base64
import hashlib
import json
import shutil
import subprocess
import time

import httpx
import numpy as np
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete

from app.auth.dependencies import require
from app.auth.models import ApiToken
from app.auth.service import create_token, revoke_token
from app.datasets.models import Dataset
from app.db.engine import session_scope
from app.main import create_app
from app.snapshots.models import Snapshot
from app.stem_models.models import ModelPromotion, StemModel
from app.stem_models.views import LATEST_RECHECK_S, LATEST_STALE_WAIT_S
from app.training_runs.models import TrainingRun
from tests.support import FETCH_HEADERS, STUDIO_ORIGIN
from tests.support.runs import run_predictor, tiny_runs
from tests.support.servers import api_process
from tests.tfjs import JS_DIR
from training.contract import STEMS
from training.model import predict
from training.shards import load_split
from training.synthetic import synthetic_snapshots

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def registry(postgres_url, tmp_path_factory):
    """Two published models (two tiny runs, carried out in-process by the stage functions)."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    mp = pytest.MonkeyPatch()
    mp.setenv("DATABASE_URL", postgres_url)
    mp.setenv("FABRIC_RATE_LIMIT_PER_S", "0")
    mp.setenv("FABRIC_CORS_ALLOWED_ORIGINS", json.dumps([STUDIO_ORIGIN]))
    mp.setenv("FABRIC_ARTIFACTS_DIR", str(artifacts))
    from tests.support import reset_caches

    reset_caches()
    with session_scope() as session:
        for table in (ModelPromotion, StemModel, TrainingRun, Dataset, Snapshot, ApiToken):
            session.execute(delete(table))
    client = TestClient(create_app())
    for snapshot in synthetic_snapshots(100, seed=31):
        client.post("/stem-separation", content=json.dumps(snapshot), headers=FETCH_HEADERS)
    run_ids = tiny_runs(artifacts, (6, 8), "e")
    with session_scope() as session:
        models = {m.run_id: (m.id, m.version) for m in session.query(StemModel)}
        operator, _ = create_token("ops", "operator", db_session=session)
        admin, _ = create_token("root", "admin", db_session=session)
        revoked, revoked_row = create_token("old", "operator", db_session=session)
        revoke_token(revoked_row.id, db_session=session)
    # Make the first run's model latest, whatever the gate said of the second.
    with session_scope() as session:
        from app.stem_models.service import promote

        promote(models[run_ids[0]][0], "test", "baseline for these tests", force=True, db_session=session)
    yield {
        "client": client,
        "artifacts": artifacts,
        "runs": run_ids,
        "models": models,
        "operator": operator,
        "admin": admin,
        "revoked": revoked,
    }
    mp.undo()
    reset_caches()


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/models"), ("POST", "/models/1/promote"), ("POST", "/models/rollback"), ("GET", "/models/promotions")],
)
def test_operator_routes_refuse_missing_wrong_and_revoked_tokens(registry, method, path):
    client = registry["client"]
    for headers in ({}, auth("pf_not-a-token"), auth(registry["revoked"]), {"Authorization": "Basic eDp5"}):
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


def test_too_little_role_is_403_and_does_not_reveal_the_resource(registry):
    app = FastAPI()

    @app.get("/admin-only/{thing}")
    def admin_only(thing: int, _: ApiToken = Depends(require("admin"))):
        return {"thing": thing}

    client = TestClient(app)
    assert client.get("/admin-only/1", headers=auth(registry["operator"])).status_code == 403
    assert client.get("/admin-only/999", headers=auth(registry["operator"])).status_code == 403
    assert client.get("/admin-only/1", headers=auth(registry["admin"])).status_code == 200
    # The real admin-only routes: dataset statistics.
    for path in ("/stats/overview", "/stats/data"):
        answer = registry["client"].get(path, headers=auth(registry["operator"]))
        assert answer.status_code == 403 and answer.json()["detail"] == "this needs the admin role; the token has operator"
        assert registry["client"].get(path, headers=auth(registry["admin"])).status_code == 200


def test_operators_list_models_with_the_latest_marked(registry):
    response = registry["client"].get("/models", headers=auth(registry["operator"]))
    assert response.status_code == 200
    listed = response.json()
    assert len(listed) == 2 and sum(m["isLatest"] for m in listed) == 1
    assert {m["decision"] for m in listed} <= {"published", "rejected"}
    assert all(m["reason"] for m in listed)


def test_promoting_a_rejected_model_needs_force_and_a_reason_which_the_audit_keeps(registry):
    client, headers = registry["client"], auth(registry["operator"])
    model_id = registry["models"][registry["runs"][1]][0]
    with session_scope() as session:
        model = session.get(StemModel, model_id)
        decision, model.decision, model.reason = model.decision, "rejected", "does not beat the strongest baseline"
    try:
        plain = client.post(f"/models/{model_id}/promote", headers=headers, json={"reason": "looks fine"})
        assert plain.status_code == 409 and "force" in plain.json()["detail"] and "strongest baseline" in plain.json()["detail"]
        blank = client.post(f"/models/{model_id}/promote", headers=headers, json={"reason": "  ", "force": True})
        assert blank.status_code == 409
        forced = client.post(f"/models/{model_id}/promote", headers=headers, json={"reason": "A/B in one region", "force": True})
        assert forced.status_code == 200 and forced.json()["forced"] is True
        audit = client.get("/models/promotions", headers=headers).json()[0]
        assert audit["modelId"] == model_id and audit["forced"] and audit["reason"] == "A/B in one region"
        assert client.post("/models/rollback", headers=headers).status_code == 200
    finally:
        with session_scope() as session:
            session.get(StemModel, model_id).decision = decision


def test_latest_manifest_revalidates_with_etag_and_carries_cors(registry):
    client = registry["client"]
    first = client.get("/models/latest", headers={"Origin": STUDIO_ORIGIN})
    assert first.status_code == 200
    assert first.headers["access-control-allow-origin"] == STUDIO_ORIGIN
    assert first.headers["cache-control"] == "no-cache"
    manifest = first.json()
    assert manifest["stems"] == list(STEMS) and manifest["output"]["stem_axis"] == 1
    assert manifest["appliedStems"] == list(STEMS)  # judged without audio: no stem's gains were found unhelpful
    assert {f["path"] for f in manifest["files"]} >= {"float32/model.json", "float16/model.json"}
    assert all(f["integrity"].startswith("sha256-") for f in manifest["files"])
    kit = client.get(manifest["studioKit"]["url"].removeprefix("http://testserver"))  # Studio pins the kit
    assert kit.status_code == 200
    digest = base64.b64encode(hashlib.sha384(kit.content).digest()).decode()
    assert manifest["studioKit"]["integrity"] == f"sha384-{digest}"
    again = client.get("/models/latest", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_latest_is_answered_from_memory_through_a_database_outage(registry, postgres_url, tmp_path):
    """Postgres unreachable (every connection dropped, new ones refused): Studio's poll still
    gets the manifest it had, promptly, while what needs the database answers 503."""
    from sqlalchemy.engine import make_url

    from tests.support.servers import TcpProxy

    url = make_url(postgres_url)
    with TcpProxy(target_port=url.port or 5432) as proxy:
        via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        env = {"DATABASE_URL": via_proxy, "FABRIC_RATE_LIMIT_PER_S": "0"}
        with api_process(env, log_path=tmp_path / "api.log") as base:
            first = httpx.get(f"{base}/models/latest")
            assert first.status_code == 200
            proxy.block()
            try:
                time.sleep(2 * LATEST_RECHECK_S)  # past the age at which a poll looks for a newer model
                assert httpx.get(f"{base}/models", headers=auth(registry["operator"]), timeout=30).status_code == 503
                during, waits = [], []
                for _ in range(5):
                    started = time.monotonic()
                    during.append(httpx.get(f"{base}/models/latest", timeout=30))
                    waits.append(time.monotonic() - started)
            finally:
                proxy.unblock()
    assert [r.status_code for r in during] == [200] * 5
    assert {r.headers["etag"] for r in during} == {first.headers["etag"]} and during[-1].content == first.content
    # Each poll is held up at most the stale wait (plus a request's own time), not the outage.
    assert max(waits) < LATEST_STALE_WAIT_S + 0.5, waits


def test_files_are_immutable_and_only_listed_ones_are_served(registry):
    client = registry["client"]
    manifest = client.get("/models/latest").json()
    for file in manifest["files"]:
        response = client.get(file["url"])
        assert response.status_code == 200
        assert "immutable" in response.headers["cache-control"]
        assert len(response.content) == file["size"]
        # A browser that has it asks with its ETag (the SHA-256) and gets a bodiless 304.
        assert response.headers["etag"] == f'"{file["sha256"]}"'
        again = client.get(file["url"], headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    version = manifest["version"]
    for trick in [
        "../manifest.json",
        "..%2fmanifest.json",
        "float32/../model.keras",
        "model.keras",
        "manifest.json",
        "%2e%2e/%2e%2e/alembic.ini",
        "/etc/passwd",
        "float32/model.json%00",
        "float32/",
    ]:
        assert client.get(f"/models/{version}/files/{trick}").status_code == 404, trick
    assert client.get("/models/no-such-version/files/float32/model.json").status_code == 404


@pytest.mark.skipif(
    shutil.which("node") is None or not (JS_DIR / "node_modules" / "@tensorflow" / "tfjs").exists(),
    reason="needs Node and `npm ci --prefix tests/js` (make test does it)",
)
def test_studio_follows_promotion_and_rollback_through_the_running_server(registry, postgres_url, tmp_path):
    (first_id, first_version), (second_id, second_version) = (registry["models"][r] for r in registry["runs"])
    env = {"DATABASE_URL": postgres_url, "FABRIC_RATE_LIMIT_PER_S": "0", "FABRIC_ARTIFACTS_DIR": str(registry["artifacts"])}
    with session_scope() as session:
        dataset_key = session.get(Dataset, session.get(TrainingRun, registry["runs"][0]).dataset_id).artifact_key
    features = load_split(registry["artifacts"] / dataset_key, "validation").features[:8]
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"shape": list(features.shape), "data": features.ravel().tolist()}))

    def studio(base: str) -> dict:
        out = tmp_path / "out.json"
        subprocess.run(
            ["node", str(JS_DIR / "studio.mjs"), f"{base}/models/latest", str(inputs), str(out)],
            check=True,
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return json.loads(out.read_text())

    def keras_predictions(run_id: int) -> np.ndarray:
        return predict(run_predictor(registry["artifacts"], run_id), features)

    with api_process(env, log_path=tmp_path / "api.log") as base:
        seen = studio(base)
        assert seen["version"] == first_version and seen["filesChecked"] >= 4
        got = np.array(seen["data"], dtype=np.float32).reshape(seen["shape"])
        assert np.abs(got - keras_predictions(registry["runs"][0])).max() < 1e-3

        promoted = httpx.post(
            f"{base}/models/{second_id}/promote",
            headers=auth(registry["operator"]),
            json={"reason": "test promotion", "force": True},
        )
        assert promoted.status_code == 200 and promoted.json()["promotedBy"].endswith(":ops")
        time.sleep(LATEST_RECHECK_S)  # the longest a poll may still see the previous model
        seen = studio(base)
        assert seen["version"] == second_version
        got = np.array(seen["data"], dtype=np.float32).reshape(seen["shape"])
        assert np.abs(got - keras_predictions(registry["runs"][1])).max() < 1e-3

        assert httpx.post(f"{base}/models/rollback", headers=auth(registry["operator"])).status_code == 200
        time.sleep(LATEST_RECHECK_S)
        assert studio(base)["version"] == first_version


def test_latest_urls_come_from_configured_base_urls_and_the_cache_stays_bounded(registry):
    from app.stem_models import views

    client = registry["client"]
    settings = client.app.state.settings
    for index in range(300):
        answer = client.get("/models/latest", headers={"Host": f"attacker-{index}.example"})
        assert answer.status_code == 200
        assert all(url.startswith(settings.public_base_urls[0]) for url in (answer.json()["modelJsonUrl"],))
        assert "attacker" not in answer.text
    assert len(views._latest_cache) <= len(settings.public_base_urls) * len(settings.channels)
    second = settings.public_base_urls[1]
    via_second = client.get("/models/latest", headers={"Host": second.split("://")[1]})
    assert via_second.json()["modelJsonUrl"].startswith(second)


def test_a_model_judged_by_the_old_feature_version_is_still_listed(registry):
    """Models published before fe-2 have SDR-style metrics: they stay listed, their figures empty."""
    model_id = registry["models"][registry["runs"][1]][0]
    with session_scope() as session:
        model = session.get(StemModel, model_id)
        manifest = model.manifest
        model.manifest = {**manifest, "metrics": {"model": {"overall": {"sdr": {"median": 3.2}}}, "zeros": {}}}
    try:
        listed = registry["client"].get("/models", headers=auth(registry["operator"])).json()
        old = next(m for m in listed if m["id"] == model_id)
        assert old["metrics"]["levelErrorDb"] is None and old["decision"] in ("published", "rejected")
    finally:
        with session_scope() as session:
            session.get(StemModel, model_id).manifest = manifest


@pytest.mark.skipif(
    shutil.which("node") is None or not (JS_DIR / "node_modules" / "@tensorflow" / "tfjs").exists(),
    reason="needs Node and `npm ci --prefix tests/js` (make test does it)",
)
def test_the_studio_kit_loads_checks_and_runs_the_latest_model(registry, postgres_url, tmp_path):
    """loadLatestModel over HTTP with tfjs 4.22: every file checked (a changed byte is refused),
    the second load served from what it has (one revalidation, 304), and predict() equal to
    Keras on the same snapshots to 1e-4."""
    from training.features import encode_features, from_wire

    snapshots = synthetic_snapshots(5, seed=77)
    (tmp_path / "snapshots.json").write_text(json.dumps(snapshots))
    env = {"DATABASE_URL": postgres_url, "FABRIC_RATE_LIMIT_PER_S": "0"}
    with api_process(env, log_path=tmp_path / "api.log") as base:
        latest = httpx.get(f"{base}/models/latest").json()
        run = subprocess.run(
            ["node", str(JS_DIR / "kit_model.mjs"), base, str(tmp_path / "snapshots.json"), str(tmp_path / "out.json")],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads((tmp_path / "out.json").read_text())
    assert seen["version"] == latest["version"] and seen["stems"] == list(STEMS)
    assert seen["unit"] == "dB relative to the mix"
    float32_files = sum(f["path"].startswith("float32/") for f in latest["files"])
    assert seen["firstLoad"] == 1 + float32_files  # the manifest, then float32's model.json and shards
    assert seen["secondLoad"] == {"requests": 1, "same": True}
    assert seen["tamperError"] and "refusing the model" in seen["tamperError"]

    run_id = next(r for r, (_, version) in registry["models"].items() if version == latest["version"])
    features = np.stack([encode_features(from_wire(s)) for s in snapshots])
    expected = predict(run_predictor(registry["artifacts"], run_id), features)
    got = np.array(seen["predictions"], dtype=np.float32)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-4
