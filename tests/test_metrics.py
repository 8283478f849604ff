"""Judging: BSS-Eval agrees with independent computations, level metrics score what they claim
(silent stems count, false activity is penalised), and the baselines are what they say."""

import fast_bss_eval.numpy as fast_bss_eval  # the NumPy implementation: no torch here
import numpy as np
import pytest
from scipy.signal import lfilter

from training.bss_eval import bss_eval
from training.features import FEATURE_DIM, LEVEL_FLOOR_DB, MAX_STEPS, VALID_COLUMN, Split
from training.metrics import baseline_predictions, evaluate, paired_margin, presence_auc, strongest_baseline


def test_bss_eval_agrees_with_fast_bss_eval_at_filter_length_one():
    rng = np.random.default_rng(7)
    for _ in range(20):
        sources = int(rng.integers(2, 7))
        references = rng.normal(size=(sources, 2000))
        estimates = references * rng.uniform(0.5, 1.5, (sources, 1)) + rng.normal(scale=0.5, size=references.shape)
        estimates += 0.3 * references[rng.permutation(sources)]
        ours = bss_eval(references, estimates, taps=1)
        sdr, sir, sar = fast_bss_eval.bss_eval_sources(references, estimates, filter_length=1, compute_permutation=False)[:3]
        for metric, theirs in {"sdr": sdr, "sir": sir, "sar": sar}.items():
            np.testing.assert_allclose(ours[metric], theirs, atol=1e-3)


def test_bss_eval_with_filters_agrees_with_explicit_least_squares_projections():
    rng = np.random.default_rng(8)
    references = rng.normal(size=(3, 3000))
    estimates = np.stack([lfilter([1, 0.5, -0.2], [1], r) for r in references]) + 0.2 * references[[1, 2, 0]]
    estimates += 0.05 * rng.normal(size=estimates.shape)
    taps = 4
    ours = bss_eval(references, estimates, taps=taps)
    # the delayed copies of every reference as columns, whole (as BSS-Eval's Toeplitz Gram matrix
    # sees them), with the estimates zero-padded to the same length
    length = references.shape[1] + taps - 1
    delayed = np.concatenate(
        [[np.concatenate([np.zeros(d), r, np.zeros(taps - 1 - d)]) for d in range(taps)] for r in references]
    ).T
    padded = np.concatenate([estimates, np.zeros((3, taps - 1))], axis=1)
    assert delayed.shape[0] == length
    for j in range(3):
        every = delayed @ np.linalg.lstsq(delayed, padded[j], rcond=None)[0]
        own = delayed[:, j * taps : (j + 1) * taps]
        target = own @ np.linalg.lstsq(own, padded[j], rcond=None)[0]
        sdr = 10 * np.log10(target @ target / ((padded[j] - target) @ (padded[j] - target)))
        sir = 10 * np.log10(target @ target / ((every - target) @ (every - target)))
        assert ours["sdr"][j] == pytest.approx(sdr, abs=1e-4) and ours["sir"][j] == pytest.approx(sir, abs=1e-4)


def test_filtering_a_stem_is_not_a_distortion_but_leaking_another_is():
    rng = np.random.default_rng(2)
    references = rng.normal(size=(3, 4000))
    filtered = np.stack([lfilter([0.6, 0.3, 0.1], [1], r) for r in references])
    leaky = filtered + 0.5 * references[[1, 2, 0]]
    assert (bss_eval(references, filtered, taps=8)["sdr"] > 40).all()
    assert (bss_eval(references, leaky, taps=8)["sir"] < 10).all()


def split(targets: np.ndarray, weights: np.ndarray | None = None) -> Split:
    features = np.zeros((len(targets), MAX_STEPS, FEATURE_DIM), np.float32)
    features[:, :, VALID_COLUMN] = 1
    return Split(features, targets.astype(np.float32), np.ones_like(targets) if weights is None else weights)


def test_silent_stems_are_scored_and_false_activity_costs():
    targets = np.full((2, 6, MAX_STEPS), LEVEL_FLOOR_DB)
    targets[:, 0] = -6.0  # only vocals play
    truth = evaluate(split(targets), targets)
    assert truth.level_error_db == 0 and truth.false_activity == 0
    everything_plays = evaluate(split(targets), np.full_like(targets, -6.0))
    assert everything_plays.level_error_db == pytest.approx(34.0 * 5 / 6)  # 5 silent stems, 34 dB off each
    assert everything_plays.false_activity == 1.0


def test_unknown_cells_are_not_scored():
    targets = np.full((1, 6, MAX_STEPS), -10.0)
    weights = np.zeros_like(targets)
    weights[0, 1, :3] = 1
    predictions = np.full_like(targets, -40.0)
    predictions[0, 1] = -10.0
    report = evaluate(split(targets, weights), predictions)
    assert report.level_error_db == 0 and set(report.per_stem) == {"drums"} and report.per_stem["drums"].cells == 3


def test_presence_auc_ranks_and_counts_ties_half():
    assert presence_auc(np.array([1.0, 2.0, 3.0, 4.0]), np.array([False, False, True, True])) == 1.0
    assert presence_auc(np.array([4.0, 3.0, 2.0, 1.0]), np.array([False, False, True, True])) == 0.0
    assert presence_auc(np.zeros(4), np.array([False, True, False, True])) == 0.5
    assert np.isnan(presence_auc(np.zeros(3), np.array([True, True, True])))


def test_baselines_are_fitted_on_train_and_constant_where_they_should_be():
    rng = np.random.default_rng(5)
    train_targets = rng.choice([LEVEL_FLOOR_DB, -10.0, -3.0], size=(20, 6, MAX_STEPS))
    train = split(train_targets)
    test = split(rng.choice([LEVEL_FLOOR_DB, -10.0], size=(4, 6, MAX_STEPS)))
    predictions = baseline_predictions(train, train, test)
    assert set(predictions) == {"silence", "mix_copy", "train_mean", "train_median", "mix_share", "ridge"}
    assert (predictions["silence"] == LEVEL_FLOOR_DB).all() and (predictions["mix_copy"] == 0).all()
    np.testing.assert_allclose(predictions["train_mean"][0, :, 0], train_targets.mean(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_allclose(predictions["train_median"][0, :, 0], np.median(train_targets, axis=(0, 2)))
    share = 10 * np.log10((10 ** (train_targets / 10)).mean(axis=(0, 2)))
    np.testing.assert_allclose(predictions["mix_share"][0, :, 0], share, rtol=1e-5)
    assert all(p.shape == test.targets.shape for p in predictions.values())


def test_ridge_learns_a_level_that_the_features_carry():
    rng = np.random.default_rng(6)
    features = rng.normal(size=(40, MAX_STEPS, FEATURE_DIM)).astype(np.float32)
    features[:, :, VALID_COLUMN] = 1
    targets = np.repeat((-20 + 5 * features[:, None, :, 0]), 6, axis=1)
    data = Split(features, targets.astype(np.float32), np.ones_like(targets, dtype=np.float32))
    test = Split(data.features[30:], data.targets[30:], data.weights[30:])
    ridge = baseline_predictions(Split(data.features[:30], data.targets[:30], data.weights[:30]), test, test)["ridge"]
    assert np.abs(ridge - test.targets).mean() < 0.1


def test_margin_interval_excludes_zero_only_for_a_consistent_win():
    rng = np.random.default_rng(0)
    reference = rng.uniform(8, 12, 50)
    better = paired_margin(reference - 1 + rng.normal(scale=0.3, size=50), reference, "ridge")
    assert better.significant_win and better.high_db < 0 < -better.low_db
    same = paired_margin(reference + rng.normal(scale=0.3, size=50), reference, "ridge")
    assert not same.significant_win and same.low_db < 0 < same.high_db
    assert not paired_margin(reference, reference, "ridge").significant_win  # identical: [0, 0]


def test_strongest_baseline_is_the_lowest_error():
    class R:
        def __init__(self, error):
            self.level_error_db = error

    assert strongest_baseline({"model": R(1.0), "silence": R(20.0), "ridge": R(9.0), "train_mean": R(10.0)}) == "ridge"
