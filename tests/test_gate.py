"""The publishing gate: a model is published only when it beats the strongest baseline by a
margin whose bootstrap 95% interval is below 0. Flat lines, constants and copies of the mix's
level are rejected, whatever the data; the champion must be matched on its own test data."""

import numpy as np
import pytest

from tests.support.splits import level_data
from training.features import LEVEL_FLOOR_DB, Split
from training.judgement import gate, judge
from training.metrics import baseline_predictions, baseline_reports, evaluate


@pytest.fixture(scope="module")
def splits() -> tuple[Split, Split, Split]:
    return level_data(0, 120), level_data(1, 40), level_data(2, 40)


def decide(splits, predictions: np.ndarray, champion: tuple | None = None) -> tuple[bool, str]:
    train, validation, test = splits
    reports = {"model": evaluate(test, predictions)} | baseline_reports(train, validation, test)
    return gate(judge(reports, train), *(champion or (None, None)))


def test_a_flat_line_is_rejected(splits):
    train, _, test = splits
    flat = np.broadcast_to(np.median(train.targets, axis=(0, 2))[None, :, None], test.targets.shape)
    publish, reason = decide(splits, flat.copy())
    assert not publish and "strongest baseline" in reason


@pytest.mark.parametrize("constant", [1.0, -10.0, LEVEL_FLOOR_DB])
def test_a_constant_is_rejected(splits, constant):
    publish, reason = decide(splits, np.full(splits[2].targets.shape, constant))
    assert not publish and "interval" in reason


def test_a_copy_of_the_mixs_level_is_rejected(splits):
    publish, _ = decide(splits, np.zeros(splits[2].targets.shape))  # every stem as loud as the mix
    assert not publish


def test_the_strongest_baseline_itself_does_not_pass(splits):
    train, validation, test = splits
    ridge = baseline_predictions(train, validation, test)["ridge"]
    publish, reason = decide(splits, ridge)
    assert not publish and "ridge" in reason and "[+0.00, +0.00]" in reason


def test_a_model_that_knows_better_is_published_with_its_figures(splits):
    test = splits[2]
    rng = np.random.default_rng(9)
    good = test.targets + rng.normal(scale=2.0, size=test.targets.shape)
    publish, reason = decide(splits, good)
    assert publish and "no champion yet" in reason and "95% interval" in reason


def test_the_champion_must_be_matched_on_its_own_test_data(splits):
    test = splits[2]
    good = test.targets + np.random.default_rng(9).normal(scale=2.0, size=test.targets.shape)
    better, worse = evaluate(test, test.targets), evaluate(test, test.targets + 5.0)
    assert decide(splits, good, (worse, better))[0] is False
    publish, reason = decide(splits, good, (better, worse))
    assert publish and "champion" in reason


def test_the_gate_says_what_users_corrections_taught(splits):
    """A run's judgement counts the training snapshots whose only label is corrections and says
    how often the model obeys the test split's corrections, beside the strongest baseline."""
    train, validation, test = splits
    plays = train.targets > LEVEL_FLOOR_DB
    weights, bounds = train.weights.copy(), train.bounds.copy()
    weights[:30] = 0  # the first 30 keep only a user's word: these stems play (at least -20 dB)
    bounds[:30, ..., 0] = np.where(plays[:30], -20.0, bounds[:30, ..., 0])
    test_bounds = test.bounds.copy()
    test_bounds[..., 0] = np.where(test.targets > LEVEL_FLOOR_DB, -20.0, test_bounds[..., 0])
    held_out = Split(test.features, test.targets, test.weights, test_bounds)
    corrected_train = Split(train.features, train.targets, weights, bounds)
    reports = {"model": evaluate(held_out, held_out.targets)} | baseline_reports(corrected_train, validation, held_out)
    metrics = judge(reports, corrected_train)
    cells = int((test.targets > LEVEL_FLOOR_DB).sum())
    assert metrics.corrections.model_dump() == {
        "corrections_only_snapshots": 30,
        "held_out_cells": cells,
        "held_out_met": 1.0,
        "baseline_held_out_met": reports[metrics.margin.reference].corrections_met,
    }
    publish, reason = gate(metrics)
    assert (
        publish
        and f"trained with 30 snapshots whose only label is users' corrections; on the test split the model obeys 1.000 of the {cells} cells"
        in reason
    )
