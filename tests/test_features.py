"""Feature version fe-3 and Studio's streams: every kept value put back at its time and
component, levels per stem and step as the target, and snapshots computed from audio the way
Studio's own code computes them."""

import json
import math

import numpy as np
import pytest

from app.snapshots.schemas import Snapshot
from tests.support import FIXTURE_NAMES, fixture_bytes
from training.contract import STEMS
from training.features import (
    COLUMNS,
    FEATURE_DIM,
    LEVEL_FLOOR_DB,
    MAX_STEPS,
    STEP_SECONDS,
    encode_features,
    encode_targets,
    from_wire,
    split_of,
    value_times,
)
from training.studio_snapshot import STREAM_LAYOUT, kept_indices, studio_streams
from training.synthetic import synthetic_snapshots

RATE = 22050


def column(features: np.ndarray, name: str) -> np.ndarray:
    return features[:, COLUMNS.index(name)]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_fixture_encodes_to_the_fixed_shape(name):
    arrays = from_wire(json.loads(fixture_bytes(name)))
    features = encode_features(arrays)
    assert features.shape == (MAX_STEPS, FEATURE_DIM) and features.dtype == np.float32
    assert np.isfinite(features).all()
    targets, weights = encode_targets(arrays)
    assert targets.shape == weights.shape == (len(STEMS), MAX_STEPS)
    assert np.isfinite(targets).all()
    # a 10 s fixture fills 5 steps of 2 s
    assert column(features, "step_valid").sum() == math.ceil(arrays.duration_s / STEP_SECONDS)


def test_the_fixtures_have_exactly_the_value_counts_studios_stride_gives():
    """The de-interleaving rests on knowing Studio's stride from duration and sample rate."""
    snapshot = json.loads(fixture_bytes("snapshot-with-ground-truth"))
    samples = round(snapshot["originalAudio"]["duration"] * snapshot["originalAudio"]["sampleRate"])
    for stream, layout in STREAM_LAYOUT.items():
        expected = len(kept_indices(layout.frames(samples) * layout.per_frame, 1000))
        assert len(snapshot["quantumFeatures"][stream]) == expected, stream


def test_values_land_at_their_own_time_and_component():
    # temporal: (rms, zcr, lag) per 1024 samples; 40 s at 22050 Hz -> 861 frames, n = 2583, stride 3:
    # every kept value is an rms (component 0), one per frame.
    times, component = value_times("temporal", 861, 40.0, RATE)
    assert (component == 0).all()
    assert times[1] == pytest.approx((1024 + 512) / RATE)
    # 30 s -> stride 2: components cycle 0, 2, 1
    times, component = value_times("temporal", 968, 30.0, RATE)  # 645 frames, n = 1935
    assert component[:6].tolist() == [0, 2, 1, 0, 2, 1]


def test_a_loud_second_half_shows_in_the_second_half_of_the_steps():
    rng = np.random.default_rng(0)
    audio = rng.normal(scale=0.01, size=(2, 20 * RATE)).astype(np.float32)
    audio[:, 10 * RATE :] *= 30
    snapshot = {
        "id": "00000000-0000-4000-8000-000000000000",
        "timestamp": 0,
        "originalAudio": {"duration": 20.0, "sampleRate": RATE, "channels": 2},
        "quantumFeatures": studio_streams(audio),
        "musicalContext": {
            "key": "C",
            "bpm": None,
            "transients": [],
            "harmonicContent": {"dominantFrequencies": [], "tensionLevel": 0.5},
        },
        "metadata": {"classification": "full", "confidence": 1.0, "processingTime": 1.0},
    }
    power = column(encode_features(from_wire(snapshot)), "spectral_log_power")
    # 30x louder = +2.95 in log10 power
    assert power[5:10].mean() - power[:5].mean() == pytest.approx(2 * math.log10(30), abs=0.2)
    assert (power[10:] == 0).all()  # past the end of the track


def test_levels_are_relative_to_the_mix_and_silent_stems_sit_at_the_floor():
    samples = 10 * RATE
    kept = kept_indices(samples, 500)
    loud = np.where(kept < samples // 2, 0.5, 0.0) * np.tile([1, -1], len(kept) // 2 + 1)[: len(kept)]
    quiet = 0.05 * np.tile([1, -1], len(kept) // 2 + 1)[: len(kept)]
    snapshot = json.loads(fixture_bytes("snapshot-mono-no-ground-truth"))
    snapshot["originalAudio"] = {"duration": 10.0, "sampleRate": RATE, "channels": 1}
    snapshot["groundTruthStems"] = {"vocals": loud.tolist(), "bass": quiet.tolist(), "sub": [0.0] * len(kept)}
    targets, weights = encode_targets(from_wire(snapshot))
    vocals, bass, sub = targets[0], targets[2], targets[5]
    assert weights[[0, 2, 5], :5].all() and not weights[[1, 3, 4]].any()  # drums etc. unknown, not silent
    assert not weights[:, 5:].any()
    assert vocals[3] == pytest.approx(LEVEL_FLOOR_DB) and bass[3] == pytest.approx(0.0, abs=1e-6)  # bass alone
    assert vocals[0] == pytest.approx(20 * math.log10(0.5 / 0.55), abs=0.01)  # same signs: the mix is 0.55
    assert (sub[:5] == LEVEL_FLOOR_DB).all()


def test_split_is_three_way_stable_and_roughly_in_proportion():
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(4000)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]
    shares = {s: splits.count(s) / len(ids) for s in ("train", "validation", "test")}
    assert shares["train"] == pytest.approx(0.7, abs=0.03) and shares["test"] == pytest.approx(0.15, abs=0.02)


def test_mono_and_empty_energy_are_flagged():
    snapshot = json.loads(fixture_bytes("snapshot-mono-no-ground-truth"))
    snapshot["quantumFeatures"]["energy"] = []
    features = encode_features(from_wire(snapshot))
    assert (column(features, "energy_missing") == 1).all() and (column(features, "stereo") == 0).all()
    assert (column(features, "stereo_pan_present") == 0).all()  # the mono placeholder describes no time


def test_nulls_are_skipped_not_read_as_zero():
    """Studio's nulls (its NaNs) leave no trace: the features are finite, and differ from those of
    the same snapshot with zeros where the nulls were (reading a null as 0 makes them equal)."""
    snapshot = json.loads(fixture_bytes("snapshot-with-corrections-and-nan"))
    zeroed = json.loads(fixture_bytes("snapshot-with-corrections-and-nan"))
    nulls = 0
    for stream, values in snapshot["quantumFeatures"].items():
        for index, value in enumerate(values):
            if value is None:
                zeroed["quantumFeatures"][stream][index] = 0.0
                nulls += 1
    assert nulls > 0
    with_nulls, with_zeros = encode_features(from_wire(snapshot)), encode_features(from_wire(zeroed))
    assert np.isfinite(with_nulls).all()
    assert not np.allclose(with_nulls, with_zeros)


def test_synthetic_snapshots_are_valid_studio_snapshots_and_deterministic():
    snapshots = synthetic_snapshots(4, seed=11)
    for snapshot in snapshots:
        Snapshot.model_validate(snapshot)
        assert all(len(v) <= 1000 for v in snapshot["quantumFeatures"].values())
        assert all(len(v) <= 500 for v in snapshot["groundTruthStems"].values())
        assert len(snapshot["musicalContext"]["transients"]) > 0
    assert synthetic_snapshots(4, seed=11) == snapshots
    assert len({s["id"] for s in snapshots}) == 4
