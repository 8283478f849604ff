"""Feature engineering and the synthetic generator: fixed shapes from Studio's variable
streams, nulls and missing stems handled, and synthetic snapshots that Studio could send."""

import json

import numpy as np
import pytest

from app.snapshots.schemas import Snapshot
from tests.conftest import FIXTURE_NAMES, fixture_bytes
from training.features import (
    CONTEXT_START,
    FEATURE_DIM,
    SEQUENCE_LENGTH,
    STEMS,
    encode_features,
    encode_targets,
    envelope,
    from_wire,
    sliced_quantiles,
)
from training.synthetic import decimate, synthetic_snapshots


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_fixture_encodes_to_the_fixed_shape(name):
    arrays = from_wire(json.loads(fixture_bytes(name)))
    features = encode_features(arrays)
    assert features.shape == (SEQUENCE_LENGTH, FEATURE_DIM) and features.dtype == np.float32
    assert np.isfinite(features).all()
    targets, mask = encode_targets(arrays.ground_truth)
    assert targets.shape == (len(STEMS), SEQUENCE_LENGTH)
    assert np.isfinite(targets).all()


def test_missing_ground_truth_is_masked_not_zero_trained():
    arrays = from_wire(json.loads(fixture_bytes("snapshot-mono-no-ground-truth")))
    targets, mask = encode_targets(arrays.ground_truth)
    assert (mask == 0).all() and (targets == 0).all()
    targets, mask = encode_targets({"vocals": np.ones(500, dtype=np.float32), "bass": None})
    assert mask.tolist() == [1, 0, 0, 0, 0, 0]


def test_nulls_are_skipped_not_read_as_zero():
    values = np.array([1.0, np.nan, 3.0, np.nan] * 128)
    quantiles, present = sliced_quantiles(values)
    assert present.all()
    assert np.isin(quantiles, [1.0, 3.0]).all()
    quantiles, present = sliced_quantiles(np.full(64, np.nan))
    assert not present.any() and (quantiles == 0).all()


def test_quantiles_keep_interleaved_components_apart():
    # temporal-like triplets: small rms, small zcr, large pitch lag
    triplets = np.tile([0.2, 0.05, 300.0], 300)
    quantiles, _ = sliced_quantiles(triplets)
    assert (quantiles[:, 0] < 1).all() and (quantiles[:, 2] == 300).all()


def test_envelope_follows_loudness():
    quiet_then_loud = np.concatenate([0.1 * np.ones(250), np.ones(250)]) * np.tile([1, -1], 250)
    env = envelope(quiet_then_loud)
    assert env[:15] == pytest.approx(0.1) and env[-15:] == pytest.approx(1.0)


def test_mono_and_empty_energy_are_flagged():
    snapshot = json.loads(fixture_bytes("snapshot-mono-no-ground-truth"))
    snapshot["quantumFeatures"]["energy"] = []
    features = encode_features(from_wire(snapshot))
    context = features[0, CONTEXT_START:]
    assert context[23] == 1.0  # energy missing
    assert context[25] == 0.0  # mono


def test_decimate_is_studios_downsampling():
    assert len(decimate(np.arange(2500), 1000)) == 834  # every 3rd
    assert len(decimate(np.arange(999), 1000)) == 999


def test_synthetic_snapshots_are_valid_studio_snapshots_and_deterministic():
    snapshots = synthetic_snapshots(4, seed=11)
    for snapshot in snapshots:
        Snapshot.model_validate(snapshot)
        assert all(len(v) <= 1000 for v in snapshot["quantumFeatures"].values())
        assert all(len(v) <= 500 for v in snapshot["groundTruthStems"].values())
        assert len(snapshot["musicalContext"]["transients"]) > 0
    assert synthetic_snapshots(4, seed=11) == snapshots
    assert len({s["id"] for s in snapshots}) == 4
