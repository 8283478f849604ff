"""Training on held-out synthetic snapshots: a tiny model beats both trivial baselines, and a
run interrupted mid-way resumes from its last epoch checkpoint instead of starting over."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from training.features import encode_features, encode_targets, from_wire
from training.model import TINY, build_model, predict
from training.synthetic import synthetic_snapshots
from training.features import Split
from training.train import STATE_FILE, evaluate_against_baselines, train


@pytest.fixture(scope="session")
def splits() -> tuple[Split, Split]:
    arrays = [from_wire(s) for s in synthetic_snapshots(200, seed=5)]
    features = np.stack([encode_features(a) for a in arrays])
    targets, masks = (np.stack(x) for x in zip(*(encode_targets(a.ground_truth) for a in arrays), strict=True))
    cut = 160
    return Split(features[:cut], targets[:cut], masks[:cut]), Split(features[cut:], targets[cut:], masks[cut:])


def test_tiny_model_beats_both_baselines_on_held_out_snapshots(splits, tmp_path):
    train_split, validation = splits
    result = train(train_split, validation, dataclasses.replace(TINY, epochs=60), tmp_path)
    reports = evaluate_against_baselines(result.model, train_split, validation)
    model = reports["model"].overall
    for baseline in ("zeros", "train_mean"):
        other = reports[baseline].overall
        assert model["sdr"]["median"] > other["sdr"]["median"] + 1.0, (baseline, model["sdr"], other["sdr"])
        assert model["sir"]["median"] > other["sir"]["median"]
        assert model["score"]["mean"] > other["score"]["mean"]


def test_interrupted_run_resumes_from_its_last_checkpoint(splits, tmp_path):
    train_split, validation = splits
    config = dataclasses.replace(TINY, epochs=6, early_stopping_patience=100)
    seen = []
    first = train(train_split, validation, config, tmp_path, on_epoch=lambda p: seen.append(p.epoch), should_stop=lambda: len(seen) >= 3)
    assert first.epochs_run == 3 and seen == [0, 1, 2]
    assert json.loads((tmp_path / STATE_FILE).read_text())["epoch"] == 2

    second = train(train_split, validation, config, tmp_path, on_epoch=lambda p: seen.append(p.epoch))
    assert second.resumed_from_epoch == 2
    assert seen == [0, 1, 2, 3, 4, 5]  # carried on, did not start over
    assert [h["epoch"] for h in second.history] == [0, 1, 2, 3, 4, 5]


def test_missing_stems_do_not_pull_predictions_towards_zero(splits, tmp_path):
    """With "vocals" masked out of every training snapshot, its head is never trained: it
    stays where it started rather than learning to predict silence."""
    train_split, validation = splits
    masks, targets = train_split.masks.copy(), train_split.targets.copy()
    masks[:, 0] = 0
    targets[:, 0] = 0  # as encode_targets leaves a missing stem
    masked = Split(train_split.features, targets, masks)
    config = dataclasses.replace(TINY, epochs=15, early_stopping_patience=100)
    keras.utils.set_random_seed(0)  # the same initial weights train() starts from
    untrained = predict(build_model(config, masked.features), validation.features)[:, 0]
    trained = predict(train(masked, validation, config, tmp_path).model, validation.features)[:, 0]
    assert trained.mean() > 0.5 * untrained.mean()


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_same_model_code_trains_on_other_backends(tmp_path, backend):
    """GPU workers may have torch or JAX with CUDA and no TensorFlow: the model and training
    code use keras.layers/keras.ops only. Keras fixes its backend at import, hence a process."""
    import subprocess
    import sys
    import textwrap

    pytest.importorskip(backend)
    script = textwrap.dedent(f"""
        import dataclasses, pathlib, keras, numpy as np
        from training.features import Split
        from training.model import TINY
        from training.train import train
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 32, 48)).astype("float32")
        y = np.abs(rng.normal(scale=0.05, size=(64, 6, 32))).astype("float32")
        m = np.ones((64, 6), "float32")
        result = train(Split(x[:48], y[:48], m[:48]), Split(x[48:], y[48:], m[48:]),
                       dataclasses.replace(TINY, epochs=2), pathlib.Path({str(tmp_path)!r}))
        print(keras.backend.backend(), result.epochs_run, result.history[-1]["loss"] < result.history[0]["loss"])
    """)
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "KERAS_BACKEND": backend})  # fmt: skip
    assert output.returncode == 0, output.stderr[-2000:]
    assert output.stdout.split()[-3:] == [backend, "2", "True"]
