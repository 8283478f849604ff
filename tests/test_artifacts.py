"""The artifact store against a real S3-compatible server (moto's, a separate process): what one
machine pushes another pulls, only what changed travels, files the store dropped are dropped,
model files stream back byte for byte, and a store that is down is a clear error, not a hang."""

import asyncio
import time

import obstore
import pytest

from app.artifacts import ObjectStore, StoreUnavailable, create_store
from app.config import Settings
from tests.support.servers import free_port, object_store_server


@pytest.fixture(scope="module")
def s3_env():
    with object_store_server() as env:
        yield env


def store_at(env: dict[str, str], local_root, **settings) -> ObjectStore:
    """A store as a machine with FABRIC_ARTIFACTS_DIR=local_root and env would make it."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**env, "FABRIC_ARTIFACTS_DIR": str(local_root), **settings}.items():
            patch.setenv(name, value)
        store = create_store(Settings(_env_file=None))
    assert isinstance(store, ObjectStore)
    return store


def test_what_one_machine_pushes_another_pulls_and_only_changes_travel(s3_env, tmp_path):
    here, there = store_at(s3_env, tmp_path / "here"), store_at(s3_env, tmp_path / "there")
    folder = here.local("runs/7")
    (folder / "nested").mkdir(parents=True)
    (folder / "last.keras").write_bytes(b"k" * 300_000)
    (folder / "state.json").write_text('{"epoch": 0}')
    (folder / "nested" / "shard.npz").write_bytes(bytes(range(256)) * 100)
    here.push("runs/7", last=["state.json"])

    pulled = there.pull("runs/7")
    assert pulled == tmp_path / "there" / "runs" / "7"
    for name in ("last.keras", "state.json", "nested/shard.npz"):
        assert (pulled / name).read_bytes() == (folder / name).read_bytes()

    # The next epoch rewrites two files: only those are sent, and only those are fetched.
    (folder / "state.json").write_text('{"epoch": 1}')
    (folder / "last.keras").write_bytes(b"K" * 300_000)
    sent = _count_calls(here, "put", lambda: here.push("runs/7", last=["state.json"]))
    fetched = _count_calls(there, "get", lambda: there.pull("runs/7"))
    assert (sent, fetched) == (2, 2)
    assert (pulled / "last.keras").read_bytes() == b"K" * 300_000
    assert _count_calls(there, "get", lambda: there.pull("runs/7")) == 0  # in step: nothing moves

    # A file the store no longer holds leaves the copy too; so does a file made only locally.
    obstore.delete(there._store, "runs/7/nested/shard.npz")
    (pulled / "written-here-only.h5").write_bytes(b"?")
    there.pull("runs/7")
    assert sorted(p.name for p in pulled.rglob("*") if p.is_file()) == [".store-sync.json", "last.keras", "state.json"]

    # A stale copy is brought in step even when its sizes match (the ETag decides).
    (pulled / "last.keras").write_bytes(b"x" * 300_000)
    there.pull("runs/7")
    assert (pulled / "last.keras").read_bytes() == b"K" * 300_000

    with pytest.raises(FileNotFoundError):
        there.pull("runs/8")
    there.forget("runs/7")
    assert not pulled.exists()


def test_a_stored_file_streams_back_whole(s3_env, tmp_path):
    store = store_at(s3_env, tmp_path)
    payload = bytes(range(251)) * 9_000  # ~2.2 MB: several chunks
    folder = store.local("models/v1")
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(payload)
    store.push("models/v1")
    assert store.served_file("models/v1/weights.bin") is None

    async def read(key: str) -> tuple[int, bytes]:
        size, chunks = await store.stream(key)
        return size, b"".join([bytes(chunk) async for chunk in chunks])

    assert asyncio.run(read("models/v1/weights.bin")) == (len(payload), payload)
    with pytest.raises(FileNotFoundError):
        asyncio.run(read("models/v1/missing.bin"))


def test_a_store_that_is_down_is_a_clear_error(tmp_path):
    env = {
        "FABRIC_ARTIFACTS_URL": "s3://fabric/x",
        "FABRIC_ARTIFACTS_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "FABRIC_ARTIFACTS_ACCESS_KEY_ID": "test",
        "FABRIC_ARTIFACTS_SECRET_ACCESS_KEY": "test",
    }
    store = store_at(env, tmp_path, FABRIC_ARTIFACTS_RETRY_TIMEOUT_S="1")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="artifact store"):
        store.pull("datasets/abc")
    assert time.monotonic() - started < 10


def _count_calls(store: ObjectStore, operation: str, action) -> int:
    """How many times `action` called obstore's `operation` (get or put) on the store."""
    calls = 0
    original = getattr(obstore, operation)

    def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    setattr(obstore, operation, counting)
    try:
        action()
    finally:
        setattr(obstore, operation, original)
    return calls


def test_a_machine_keeps_copies_of_only_the_most_recently_used_datasets(s3_env, tmp_path):
    builder = store_at(s3_env, tmp_path / "builder")
    for name in ("a", "b", "c"):
        folder = builder.local(f"datasets/{name}")
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(name)
        builder.push(f"datasets/{name}")
    worker = store_at(s3_env, tmp_path / "worker", FABRIC_ARTIFACTS_LOCAL_COPIES="2")
    for name in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" arrives
        worker.pull(f"datasets/{name}")
        time.sleep(0.01)
    assert sorted(p.name for p in (tmp_path / "worker" / "datasets").iterdir()) == ["a", "c"]


def test_a_model_file_the_bucket_cannot_give_is_a_503_to_retry(s3_env, configure, tmp_path):
    """A published model whose file is missing from the bucket, or stored at another size than
    its manifest says: Studio gets 503 with Retry-After (never a 500, never other bytes)."""
    from fastapi.testclient import TestClient

    from app.datasets.models import Dataset
    from app.db.engine import session_scope
    from app.db.migrate import upgrade_database
    from app.main import create_app
    from app.stem_models.models import StemModel
    from app.training_runs.models import TrainingRun

    database_url = f"sqlite:///{tmp_path / 'own.sqlite3'}"  # its half-made model must not reach other tests
    upgrade_database(database_url)
    configure(DATABASE_URL=database_url, FABRIC_ARTIFACTS_DIR=str(tmp_path), **s3_env)
    files = [{"path": f"float32/{name}", "size": 4, "sha256": "0" * 64, "integrity": "sha256-x"} for name in ("a.bin", "b.bin")]
    with session_scope() as session:
        dataset = Dataset(
            content_hash=uuid_hex(),
            run_label="x",
            feature_version="fe-2",
            train_ratio=0.7,
            train_count=1,
            validation_count=1,
            test_count=1,
            artifact_key="datasets/x",
            manifest={},
        )
        run = TrainingRun(label="x", status="succeeded", stage="done", parameters={}, history=[])
        session.add_all([dataset, run])
        session.flush()
        version = f"r{run.id}-{uuid_hex()[:8]}"
        session.add(
            StemModel(
                version=version,
                run_id=run.id,
                dataset_id=dataset.id,
                artifact_key=f"models/{version}",
                manifest={"files": files},
                decision="rejected",
                reason="test",
            )
        )
    store = store_at(s3_env, tmp_path / "publisher")
    folder = store.local(f"models/{version}/float32")
    folder.mkdir(parents=True)
    (folder / "b.bin").write_bytes(b"longer than four bytes")  # a.bin never reached the bucket
    store.push(f"models/{version}")
    client = TestClient(create_app())
    for name in ("a.bin", "b.bin"):
        response = client.get(f"/models/{version}/files/float32/{name}")
        assert response.status_code == 503 and response.headers["retry-after"] == "5", (name, response.text)


def uuid_hex() -> str:
    import uuid

    return uuid.uuid4().hex
