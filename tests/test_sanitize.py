"""The sanitiser: what it changes, that it says so, and that PII never reaches the database."""

import numpy as np
import pytest

from app.snapshots import arrays
from app.snapshots.sanitize import sanitise
from app.snapshots.schemas import Snapshot
from tests.support import fixture_snapshot


def clean(raw: dict):
    return sanitise(Snapshot.model_validate(raw), raw)


@pytest.mark.parametrize(
    "classification",
    [
        "/Users/jane/Music/song.mp3",
        "C:\\Users\\jane\\song.wav",
        "jane.doe@example.com",
        "https://cdn.example.com/track?id=1",
        "Jane Doe",
        "my_favourite_song.flac",
        "x" * 40,
        "",
    ],
)
def test_classification_that_could_carry_pii_is_scrubbed(classification):
    raw = fixture_snapshot()
    raw["metadata"]["classification"] = classification
    result = clean(raw)
    assert result.row["classification"] == "unknown"
    assert result.rules_fired["classification_scrubbed"] == 1


@pytest.mark.parametrize(("sent", "stored"), [("twotrack", "twotrack"), ("full", "full"), (" Four-Stem ", "four-stem")])
def test_plain_classifications_are_kept(sent, stored):
    raw = fixture_snapshot()
    raw["metadata"]["classification"] = sent
    result = clean(raw)
    assert result.row["classification"] == stored
    assert "classification_scrubbed" not in result.rules_fired
    assert ("classification_normalised" in result.rules_fired) == (sent != stored)


def test_unknown_fields_are_dropped_and_counted():
    raw = fixture_snapshot()
    raw["trackName"] = "Jane's demo.wav"
    raw["metadata"]["userEmail"] = "jane@example.com"
    raw["musicalContext"]["transients"][0]["label"] = "kick"
    result = clean(raw)
    assert result.rules_fired["unknown_field_dropped"] == 3
    assert "Jane" not in repr(result.row)


def test_nulls_become_nan_and_are_counted():
    raw = fixture_snapshot()
    raw["quantumFeatures"]["spectral"][3] = None
    raw["groundTruthStems"]["bass"][0:2] = [None, None]
    result = clean(raw)
    spectral = arrays.unpack(result.row["spectral"])
    assert np.isnan(spectral[3]) and np.isfinite(np.delete(spectral, 3)).all()
    assert result.rules_fired["null_values.spectral"] == 1
    assert result.rules_fired["null_values.gt_bass"] == 2
    assert result.row["null_count"] == 3


def test_transient_timings_become_count_density_and_strength():
    raw = fixture_snapshot()
    transients = raw["musicalContext"]["transients"]
    result = clean(raw)
    assert "transients" not in result.row
    assert result.row["transient_count"] == len(transients)
    assert result.row["transient_density"] == pytest.approx(len(transients) / raw["originalAudio"]["duration"])
    assert result.row["transient_mean_strength"] == pytest.approx(np.mean([t["strength"] for t in transients]))
    assert result.rules_fired["transients_summarised"] == len(transients)


def test_the_mean_strength_of_huge_finite_strengths_stays_finite():
    raw = fixture_snapshot()
    raw["musicalContext"]["transients"] = [{"time": 0.1, "strength": 1.5e308}, {"time": 0.2, "strength": 1.7e308}]
    assert clean(raw).row["transient_mean_strength"] == pytest.approx(1.6e308)


def test_no_transients_gives_zero_density():
    raw = fixture_snapshot()
    raw["musicalContext"]["transients"] = []
    result = clean(raw)
    assert (result.row["transient_count"], result.row["transient_density"]) == (0, 0.0)
    assert result.row["transient_mean_strength"] is None


def test_empty_ground_truth_stem_counts_as_absent():
    raw = fixture_snapshot()
    raw["groundTruthStems"] = {"vocals": []}
    result = clean(raw)
    assert result.row["gt_vocals"] is None and not result.row["has_ground_truth"]
    assert result.rules_fired["empty_ground_truth_stem_dropped"] == 1


def test_content_hash_ignores_the_id_and_sees_every_value():
    raw = fixture_snapshot()
    same = {**raw, "id": fixture_snapshot()["id"]}
    assert clean(raw).content_hash == clean(same).content_hash
    changed = fixture_snapshot()
    changed["id"] = raw["id"]
    changed["groundTruthStems"]["sub"][-1] += 0.5
    assert clean(raw).content_hash != clean(changed).content_hash
