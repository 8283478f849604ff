"""Exported weights load in the real @tensorflow/tfjs 4.22 (Node, CPU backend) and predict, stem
by stem, the levels (dB) the Keras model predicts; float16 weights too, with their error measured."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from tests.tfjs import JS_DIR, serve_directory, tfjs_predict
from training.contract import STEMS
from training.export import export_graph_model
from training.model import TINY, predict
from training.train import train

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (JS_DIR / "node_modules" / "@tensorflow" / "tfjs").exists(),
    reason="needs Node and `npm ci --prefix tests/js` (make test does it)",
)


@pytest.fixture(scope="module")
def trained(instrument_splits, tmp_path_factory):
    train_split, validation = instrument_splits["train"], instrument_splits["validation"]
    run_dir = tmp_path_factory.mktemp("run")
    return train(train_split, validation, dataclasses.replace(TINY, epochs=8), run_dir).model, validation


def test_graph_model_matches_keras_stem_by_stem(trained, tmp_path):
    model, validation = trained
    spec = export_graph_model(model, tmp_path / "export")
    expected = predict(model, validation.features)  # [n, stems, steps], STEMS order

    with serve_directory(tmp_path / "export") as base:
        got, info = tfjs_predict(f"{base}/model.json", validation.features, tmp_path)

    assert info["tfjs"] == "4.22.0" and info["backend"] == "cpu"
    assert spec["stems"] == list(STEMS) and spec["output"]["stem_axis"] == 1 and spec["input"]["step_seconds"] == 2.0
    assert got.shape == expected.shape
    for index, stem in enumerate(spec["stems"]):
        error = np.abs(got[:, index] - expected[:, STEMS.index(stem)]).max()
        assert error < 1e-3, f"{stem}: max |tfjs - keras| = {error} dB"
    # The stems are told apart: swapping two would not pass.
    assert np.abs(got[:, 0] - expected[:, 1]).max() > 1.0


def test_float16_weights_load_and_stay_close(trained, tmp_path):
    model, validation = trained
    export_graph_model(model, tmp_path / "f16", float16=True)
    export_graph_model(model, tmp_path / "f32")
    sizes = {name: sum(p.stat().st_size for p in (tmp_path / name).glob("*.bin")) for name in ("f16", "f32")}
    assert sizes["f16"] < 0.6 * sizes["f32"]
    expected = predict(model, validation.features)
    with serve_directory(tmp_path / "f16") as base:
        got, _ = tfjs_predict(f"{base}/model.json", validation.features, tmp_path)
    error = np.abs(got - expected).max()
    print(json.dumps({"float16_max_abs_error_db": float(error)}))
    # Rounding every weight to float16 moved levels by at most ~0.13 dB here; weights read back
    # wrongly (bytes as another dtype, a shifted file) move them by tens of dB.
    assert error < 0.3
