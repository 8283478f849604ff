"""Users' corrections are training signal: each becomes a bound on its stem's level over its
time range; a model trained with corrected snapshots (with or without ground truth) moves its
levels the way users corrected on held-out corrected snapshots; datasets keep snapshots whose
only signal is a correction."""

import dataclasses
import json

import numpy as np
import pytest

from tests.support import fixture_bytes
from training.contract import STEMS
from training.features import (
    NO_BOUND,
    PRESENT_DB,
    VALID_COLUMN,
    Correction,
    Split,
    correction_bound,
    encode_bounds,
    from_wire,
)
from training.metrics import evaluate
from training.model import TINY, predict
from training.train import train


def test_each_correction_bounds_its_stem_over_its_time_range():
    snapshot = from_wire(json.loads(fixture_bytes("snapshot-with-corrections-and-nan")))  # 8 s: 4 steps
    bounds = encode_bounds(snapshot)
    harmonic, perc = STEMS.index("harmonic"), STEMS.index("perc")
    # masking harmonic over 4.8-7.8 s: steps 2 and 3, at most PRESENT_DB - 5
    assert (bounds[harmonic, 2:4, 1] == PRESENT_DB - 5).all() and (bounds[harmonic, :2, 1] == NO_BOUND[1]).all()
    # isolation of perc over 1.8-3.1 s: steps 0 and 1, at least -3 dB
    assert (bounds[perc, 0:2, 0] == -3.0).all() and (bounds[perc, 2:, 0] == NO_BOUND[0]).all()
    untouched = [i for i in range(len(STEMS)) if i not in (harmonic, perc)]
    assert (bounds[untouched, :, 0] == NO_BOUND[0]).all() and (bounds[untouched, :, 1] == NO_BOUND[1]).all()


def test_a_correction_without_a_time_range_covers_the_track_and_strength_sets_the_bound():
    snapshot = dataclasses.replace(
        from_wire(json.loads(fixture_bytes("snapshot-with-corrections-and-nan"))),
        corrections=(Correction("vocals", "boost", None, None, 1.0),),
    )
    bounds = encode_bounds(snapshot)
    assert (bounds[0, :4, 0] == -6.0).all() and (bounds[0, 4:, 0] == NO_BOUND[0]).all()
    assert correction_bound("boost", 0.0) == (-20.0, NO_BOUND[1]) and correction_bound("cut", 1.0) == (NO_BOUND[0], -30.0)


def with_vocals_boosted(split: Split, keep_ground_truth: bool) -> Split:
    """The same snapshots, each corrected by a user who boosted the vocals over the whole track."""
    bounds = split.bounds.copy()
    valid = split.features[:, :, VALID_COLUMN] > 0.5
    bounds[:, 0, :, 0] = np.where(valid, correction_bound("boost", 1.0)[0], NO_BOUND[0])
    weights = split.weights if keep_ground_truth else np.zeros_like(split.weights)
    return Split(split.features, split.targets, weights, bounds)


# With ground truth kept, the truth (silent vocals are silent) and the users (boost them
# everywhere) disagree wherever the vocals rest, and the model weighs both: a smaller move.
@pytest.mark.parametrize(("keep_ground_truth", "more_met", "louder_db"), [(False, 0.2, 3.0), (True, 0.08, 1.0)])
def test_the_model_moves_the_way_users_corrected_on_held_out_snapshots(
    instrument_splits, tmp_path, keep_ground_truth, more_met, louder_db
):
    train_split, validation, test = (instrument_splits[s] for s in ("train", "validation", "test"))
    half = len(train_split) // 2
    corrected = with_vocals_boosted(
        Split(*(a[:half] for a in (train_split.features, train_split.targets, train_split.weights, train_split.bounds))),
        keep_ground_truth,
    )
    plain = Split(*(a[half:] for a in (train_split.features, train_split.targets, train_split.weights, train_split.bounds)))
    with_corrections = Split(
        *(
            np.concatenate([a, b])
            for a, b in zip(
                (plain.features, plain.targets, plain.weights, plain.bounds),
                (corrected.features, corrected.targets, corrected.weights, corrected.bounds),
                strict=True,
            )
        )
    )
    config = dataclasses.replace(TINY, epochs=30)
    taught = train(with_corrections, validation, config, tmp_path / "taught", seed=0).model
    untaught = train(plain, validation, config, tmp_path / "untaught", seed=0).model

    held_out = with_vocals_boosted(test, keep_ground_truth=False)
    taught_report, untaught_report = (evaluate(held_out, predict(m, held_out.features)) for m in (taught, untaught))
    assert held_out.bounded.sum() == taught_report.corrected_cells > 0
    met = (taught_report.corrections_met, untaught_report.corrections_met)
    assert met[0] > met[1] + more_met, met
    valid = held_out.features[:, :, VALID_COLUMN] > 0.5
    taught_vocals, untaught_vocals = (predict(m, held_out.features)[:, 0][valid].mean() for m in (taught, untaught))
    assert taught_vocals > untaught_vocals + louder_db, (taught_vocals, untaught_vocals)
