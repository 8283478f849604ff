"""Training on songs played by sampled instruments: with three seeds, the tiny model beats the
strongest baseline on the test split by a margin whose interval is above 0, with every stem's
error in each epoch's history; a collapsed output is a clear error; an interrupted run resumes
from its last epoch checkpoint instead of starting over."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from training.contract import STEMS
from training.features import FEATURE_DIM, LEVEL_FLOOR_DB, MAX_STEPS, Split, unbounded
from training.judgement import gate, judge
from training.model import TINY, LevelLoss, pack_targets
from training.train import STATE_FILE, CollapsedOutputError, check_not_collapsed, evaluate_against_baselines, train

# What the tests train: the tiny configuration, long enough for early stopping to pick the epoch.
CONFIG = dataclasses.replace(TINY, epochs=80)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_seed_beats_the_strongest_baseline_on_held_out_songs(instrument_splits, tmp_path, seed):
    splits = instrument_splits
    result = train(splits["train"], splits["validation"], CONFIG, tmp_path, seed=seed)
    metrics = judge(
        evaluate_against_baselines(result.model, splits["train"], splits["validation"], splits["test"]), splits["train"]
    )
    publish, reason = gate(metrics)
    assert publish, reason
    margin = metrics.margin
    assert margin.reference in ("ridge", "train_median", "train_mean", "mix_share") and margin.high_db < 0
    assert metrics.model.presence_auc > 0.6
    # every stem's error is in every epoch's history, for training and validation
    for epoch in result.history:
        assert all(f"{stem}_error_db" in epoch and f"val_{stem}_error_db" in epoch for stem in STEMS)


def test_a_flat_line_is_rejected_on_the_same_songs(instrument_splits):
    splits = instrument_splits
    train_split, test = splits["train"], splits["test"]
    known = train_split.weights > 0
    median = np.array([np.median(train_split.targets[:, i][known[:, i]]) for i in range(len(STEMS))])

    class Flat:  # what a collapsed model would publish
        def predict(self, features, **_):
            return np.broadcast_to(median[None, :, None], (len(features), len(STEMS), MAX_STEPS)).astype(np.float32)

    metrics = judge(evaluate_against_baselines(Flat(), train_split, splits["validation"], test), train_split)
    assert not gate(metrics)[0]


def test_unknown_cells_cost_nothing_in_the_loss():
    rng = np.random.default_rng(0)
    targets = rng.uniform(-40, 0, (2, 6, MAX_STEPS)).astype(np.float32)
    predictions = rng.uniform(-40, 0, (2, 6, MAX_STEPS)).astype(np.float32)
    weights = np.ones_like(targets)
    weights[:, 0] = 0  # vocals unknown
    wild = targets.copy()
    wild[:, 0] = 1e6  # whatever an unknown cell holds
    loss = keras.ops.convert_to_numpy(LevelLoss().call(pack_targets(targets, weights), predictions))
    assert np.allclose(loss, keras.ops.convert_to_numpy(LevelLoss().call(pack_targets(wild, weights), predictions)))
    expected = (np.abs(predictions - targets)[:, 1:] / 10).mean(axis=(1, 2))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


@pytest.mark.parametrize(("corrected_level", "outside_db"), [(-11.0, 1.0 + 3.0), (-8.0, 3.0 - 2.0), (-6.0, 0.0)])
def test_the_loss_weighs_cells_not_snapshots_and_wants_levels_inside_bounds(corrected_level, outside_db):
    """One snapshot with every cell known (each 10 dB off), one whose only label is a lower bound
    of -10 dB on one cell: the bounded cell weighs as one cell of the batch, not as a snapshot, and
    costs until the level is the margin (3 dB) inside its bound."""
    targets = np.zeros((2, 6, MAX_STEPS), np.float32)
    weights = np.zeros_like(targets)
    weights[0] = 1
    bounds = unbounded(2)
    bounds[1, 0, 0, 0] = -10.0
    predictions = targets + 10.0
    predictions[1, 0, 0] = corrected_level
    loss = LevelLoss(correction_weight=1.0, correction_margin_db=3.0)(pack_targets(targets, weights, bounds), predictions)
    cells = 6 * MAX_STEPS
    assert float(loss) == pytest.approx((cells * 1.0 + outside_db / 10) / (cells + 1), rel=1e-5)


def test_a_collapsed_stem_is_a_clear_error():
    rng = np.random.default_rng(1)
    targets = rng.choice([LEVEL_FLOOR_DB, -8.0], size=(4, 6, MAX_STEPS)).astype(np.float32)
    split = Split(np.zeros((4, MAX_STEPS, FEATURE_DIM), np.float32), targets, np.ones_like(targets))
    predictions = targets + rng.normal(scale=1.0, size=targets.shape)
    check_not_collapsed(predictions, split)  # varies: fine
    predictions[:, 2] = -17.25  # bass always the same
    with pytest.raises(CollapsedOutputError, match=r"bass \(always -17.2 dB"):
        check_not_collapsed(predictions, split)


def test_interrupted_run_resumes_from_its_last_checkpoint(instrument_splits, tmp_path):
    train_split, validation = instrument_splits["train"], instrument_splits["validation"]
    config = dataclasses.replace(TINY, epochs=6, early_stopping_patience=100)
    seen = []
    first = train(
        train_split, validation, config, tmp_path, on_epoch=lambda p: seen.append(p.epoch), should_stop=lambda: len(seen) >= 3
    )
    assert first.epochs_run == 3 and seen == [0, 1, 2]
    assert json.loads((tmp_path / STATE_FILE).read_text())["epoch"] == 2

    second = train(train_split, validation, config, tmp_path, on_epoch=lambda p: seen.append(p.epoch))
    assert second.resumed_from_epoch == 2
    assert seen == [0, 1, 2, 3, 4, 5]  # carried on, did not start over
    assert [h["epoch"] for h in second.history] == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_same_model_code_trains_on_other_backends(tmp_path, backend):
    """GPU workers may have torch or JAX with CUDA and no TensorFlow: the model and training
    code use keras.layers/keras.ops only. Keras fixes its backend at import, hence a process."""
    import os
    import subprocess
    import sys
    import textwrap

    pytest.importorskip(backend)
    script = textwrap.dedent(f"""
        import dataclasses, pathlib, keras, numpy as np
        from training.features import FEATURE_DIM, MAX_STEPS, VALID_COLUMN, Split
        from training.model import TINY
        from training.train import train
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, MAX_STEPS, FEATURE_DIM)).astype("float32")
        x[:, :, VALID_COLUMN] = 1
        y = np.where(x[:, None, :, 0] > 0, -5.0, -40.0).repeat(6, axis=1).astype("float32")
        w = np.ones_like(y)
        result = train(Split(x[:48], y[:48], w[:48]), Split(x[48:], y[48:], w[48:]),
                       dataclasses.replace(TINY, epochs=2), pathlib.Path({str(tmp_path)!r}))
        print(keras.backend.backend(), result.epochs_run, result.history[-1]["loss"] < result.history[0]["loss"])
    """)
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": backend}
    )
    assert output.returncode == 0, output.stderr[-2000:]
    assert output.stdout.split()[-3:] == [backend, "2", "True"]
