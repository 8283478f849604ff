"""Users' corrections are training signal: each becomes a bound on its stem's level over the
part of its time range that a step covers; snapshots whose only label is corrections improve the
model on held-out songs."""

import dataclasses
import json
import warnings

import numpy as np
import pytest

from tests.support import fixture_bytes
from training.contract import STEMS
from training.features import (
    NO_BOUND,
    PRESENT_DB,
    Correction,
    Split,
    correction_bound,
    encode_bounds,
    encode_features,
    encode_targets,
    from_wire,
    split_of,
)
from training.metrics import evaluate, paired_margin
from training.model import TINY, predict
from training.simulated_users import UserModel, simulate_corrections
from training.train import train


def test_each_correction_bounds_its_stem_over_its_time_range():
    snapshot = from_wire(json.loads(fixture_bytes("snapshot-with-corrections-and-nan")))  # 8 s: 4 steps
    bounds = encode_bounds(snapshot)
    harmonic, perc = STEMS.index("harmonic"), STEMS.index("perc")
    # masking harmonic over 4.8-7.8 s: an upper bound (at most PRESENT_DB - 5) only on step 3,
    # which it covers by 90%; step 2 (60%) may be loud in the part the user did not hear
    assert bounds[harmonic, 3, 1] == PRESENT_DB - 5 and (bounds[harmonic, :3, 1] == NO_BOUND[1]).all()
    # isolation of perc over 1.78-3.07 s: a lower bound on step 1, which it covers by 1.07 of 2 s,
    # loosened by that share (-3 dB over the part heard is at least -5.7 dB over the step);
    # step 0 (covered by 0.22 s) is free
    assert bounds[perc, 1, 0] == pytest.approx(-3.0 + 10 * np.log10((3.07052552111847 - 2.0) / 2.0), abs=1e-4)
    assert bounds[perc, 0, 0] == NO_BOUND[0] and (bounds[perc, 2:, 0] == NO_BOUND[0]).all()
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


# Users who correct three to eight stretches of a song in training, and six to twelve in the
# held-out songs: enough corrected cells in a set this small for the effect to show past the
# spread between seeds.
TRAINING_USERS, HELD_OUT_USERS = UserModel(corrections=(3, 8)), UserModel(corrections=(6, 12))
SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def corrected_songs(instrument_songs) -> dict[str, Split]:
    """The instrument songs split by id as datasets are; train halved into a set with ground
    truth and a set whose only label is what a truthful simulated user corrected; validation
    and test with ground truth and such corrections."""
    from training.multitrack import read_song, song_folders, song_snapshot

    rows: dict[str, list] = {split: [] for split in ("with_truth", "corrections_only", "validation", "test")}
    for index, folder in enumerate(song_folders(instrument_songs)):
        song = read_song(folder)
        snapshot = song_snapshot(song)
        split = split_of(snapshot["id"])
        user = TRAINING_USERS if split == "train" else HELD_OUT_USERS
        snapshot["userCorrections"] = simulate_corrections(song.stems, song.sample_rate, np.random.default_rng(index), user)
        arrays = from_wire(snapshot)
        targets, weights = encode_targets(arrays)
        if split == "train":
            split = "with_truth" if index % 2 == 0 else "corrections_only"
            weights = weights if split == "with_truth" else np.zeros_like(weights)
        rows[split].append((encode_features(arrays), targets, weights, encode_bounds(arrays)))
    return {name: Split(*(np.stack(column) for column in zip(*r, strict=True))) for name, r in rows.items()}


def test_corrections_only_snapshots_improve_held_out_songs(corrected_songs, tmp_path):
    """Adding snapshots whose only label is a truthful user's corrections must not make held-out
    level error worse (interval's upper end at most +0.1 dB) and must make held-out corrections
    obeyed more often (interval above 0); each song's figures are averaged over four seeds.
    Corrections weighed per snapshot, or bounds rounded out to whole steps, fail it."""
    with_truth, corrections_only = corrected_songs["with_truth"], corrected_songs["corrections_only"]
    validation, test = corrected_songs["validation"], corrected_songs["test"]
    assert corrections_only.corrections_only.all() and corrections_only.bounded.sum() > 400
    both = Split.concat(with_truth, corrections_only)
    config = dataclasses.replace(TINY, epochs=30)
    reports: dict[str, list] = {"taught": [], "untaught": []}
    for seed in SEEDS:
        for name, split in (("taught", both), ("untaught", with_truth)):
            model = train(split, validation, config, tmp_path / f"{name}-{seed}", seed=seed).model
            reports[name].append(evaluate(test, predict(model, test.features)))

    def per_song(name: str, figure: str) -> np.ndarray:
        with warnings.catch_warnings():  # a song without a bounded cell stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean([getattr(r, figure) for r in reports[name]], axis=0)

    error = paired_margin(per_song("taught", "per_snapshot"), per_song("untaught", "per_snapshot"), "without")
    met = paired_margin(
        per_song("taught", "corrections_met_per_snapshot"), per_song("untaught", "corrections_met_per_snapshot"), "without"
    )
    assert reports["taught"][0].corrected_cells == test.bounded.sum() > 300
    assert error.high_db <= 0.1, error
    assert met.low_db > 0, met
