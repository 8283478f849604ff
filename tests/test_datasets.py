"""Datasets keep every member's id exactly (ids ending in zero bytes once lost them) and keep
snapshots whose only signal is a user's correction."""

import json
import uuid

import numpy as np
from fastapi.testclient import TestClient

from app.artifacts import LocalStore
from app.datasets.service import build_dataset
from app.db.engine import session_scope
from app.main import create_app
from tests.support import FETCH_HEADERS, fixture_snapshot
from training.shards import load_split


def test_ids_round_trip_and_correction_only_snapshots_are_members(configure, sqlite_url, tmp_path):
    configure(DATABASE_URL=sqlite_url, FABRIC_RATE_LIMIT_PER_S="0")
    client = TestClient(create_app())
    ids = [f"12345678-1234-4234-8234-1234{index:04d}0000" for index in range(6)]  # bytes end in 00 00
    for index, snapshot_id in enumerate(ids[:5]):
        snapshot = fixture_snapshot(id=snapshot_id)
        snapshot["metadata"]["confidence"] = 0.5 + index / 100  # distinct content: a copy would be skipped
        assert client.post("/stem-separation", content=json.dumps(snapshot), headers=FETCH_HEADERS).status_code == 201
    corrected = fixture_snapshot("snapshot-with-corrections-and-nan", id=ids[5])
    corrected.pop("groundTruthStems", None)  # its only signal: the user's corrections
    assert client.post("/stem-separation", content=json.dumps(corrected), headers=FETCH_HEADERS).status_code == 201

    with session_scope() as session:
        dataset = build_dataset(LocalStore(tmp_path), "ids", db_session=session)
        directory, manifest = tmp_path / dataset.artifact_key, dataset.manifest
    stored = []
    for split in ("train", "validation", "test"):
        for name in manifest["shards"][split]:
            stored += [str(uuid.UUID(bytes=row.tobytes())) for row in np.load(directory / name)["ids"]]
    assert set(ids) <= set(stored)  # other tests share this database: it may hold more
    assert manifest["with_corrections"] >= 1 and sum(manifest["corrections_only"].values()) >= 1
    bounded = sum(int(load_split(directory, split).bounded.sum()) for split in ("train", "validation", "test"))
    assert bounded > 0
