"""Several predictors per run, chosen on validation: ridge is a Keras model like the learned
ones (same input, output and export, loaded by the real tfjs 4.22), the lowest validation error
is selected, and a learned candidate that does not beat ridge on test hands the gate to ridge."""

import shutil

import numpy as np
import pytest

from tests.support.splits import level_data
from tests.tfjs import JS_DIR, serve_directory, tfjs_predict
from training.candidates import (
    RIDGE,
    Candidate,
    choose,
    judge_candidates,
    kind_of,
    load_candidates,
    ridge_model,
    select,
    train_candidates,
)
from training.features import LEVEL_CEILING_DB, LEVEL_FLOOR_DB, Split
from training.judgement import gate, judge
from training.metrics import baseline_predictions, baseline_reports, evaluate, select_ridge
from training.model import CANDIDATES, build_model, mean_levels, predict


@pytest.fixture(scope="module")
def splits() -> tuple[Split, Split, Split]:
    return level_data(10, 120), level_data(11, 40), level_data(12, 40)


def baselines(splits) -> dict:
    train, validation, test = splits
    return baseline_reports(train, validation, test)


def test_ridge_as_a_keras_model_predicts_what_ridge_does(splits):
    train, validation, test = splits
    ridge = select_ridge(train, validation)
    keras_levels = np.asarray(ridge_model(ridge).predict(test.features, verbose=0))
    assert np.abs(keras_levels - ridge.predict(test.features)).max() < 1e-3


@pytest.mark.skipif(
    shutil.which("node") is None or not (JS_DIR / "node_modules" / "@tensorflow" / "tfjs").exists(),
    reason="needs Node and `npm ci --prefix tests/js` (make test does it)",
)
def test_ridge_exports_to_a_graph_model_tfjs_runs(splits, tmp_path):
    from training.export import export_graph_model

    train, validation, test = splits
    ridge = select_ridge(train, validation)
    export_graph_model(ridge_model(ridge), tmp_path / "ridge")
    with serve_directory(tmp_path / "ridge") as base:
        got, info = tfjs_predict(f"{base}/model.json", test.features[:8], tmp_path)
    expected = np.clip(ridge.predict(test.features[:8]), LEVEL_FLOOR_DB, LEVEL_CEILING_DB)
    assert info["tfjs"] == "4.22.0" and got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-3


def test_each_candidate_trains_and_the_lowest_validation_error_is_selected(splits, tmp_path):
    train, validation, test = splits
    results = train_candidates(["tiny", "mlp"], train, validation, tmp_path, epochs=3)
    assert {name: r.epochs_run for name, r in results.items()} == {"tiny": 3, "mlp": 3}
    assert {p.name for p in tmp_path.iterdir()} == {"tiny", "mlp", RIDGE}
    candidates = judge_candidates(load_candidates(tmp_path, ["tiny", "mlp"]), validation, test)
    assert [c.name for c in candidates] == ["tiny", "mlp", RIDGE]
    assert [c.kind for c in candidates] == ["transformer", "mlp", "ridge"]
    best = min(candidates, key=lambda c: c.validation_error_db)
    assert select(candidates) is best
    # Started again on the same folder, nothing trains twice.
    again = train_candidates(["tiny", "mlp"], train, validation, tmp_path, epochs=3)
    assert {name: (r.epochs_run, r.resumed_from_epoch) for name, r in again.items()} == {"tiny": (3, 2), "mlp": (3, 2)}


def test_the_mlp_sees_one_step_at_a_time(splits):
    """Changing one step's features moves that step's levels only (a transformer's move others)."""
    train = splits[0]
    mlp = build_model(CANDIDATES["mlp"], train.features, mean_levels(train.targets, train.weights))
    features = train.features[:2].copy()
    before = predict(mlp, features)
    features[:, 5] += 3.0
    moved = np.abs(predict(mlp, features) - before).max(axis=(0, 1)) > 1e-6
    assert moved[5] and not moved[np.arange(len(moved)) != 5].any()


def candidate(name: str, validation_error: float, test_predictions: np.ndarray, test: Split) -> Candidate:
    return Candidate(name, kind_of(name), validation_error, evaluate(test, test_predictions))


def test_a_learned_candidate_that_beats_ridge_faces_the_gate(splits):
    train, validation, test = splits
    ridge_levels = baseline_predictions(train, validation, test)["ridge"]
    truth = np.where(test.weights > 0, test.targets, ridge_levels)
    good = ridge_levels + 0.8 * (truth - ridge_levels)  # most of the way from ridge to the truth
    candidates = [candidate("small", 1.0, good, test), candidate(RIDGE, 2.0, ridge_levels, test)]
    choice = choose(candidates, baselines(splits))
    assert choice.selected.name == choice.predictor.name == "small"
    metrics = judge({"model": choice.predictor.test} | baselines(splits), train, choice)
    publish, reason = gate(metrics)
    assert publish and metrics.margin.reference == "ridge" and "small (small has the lowest validation level error" in reason


def test_a_learned_candidate_that_does_not_beat_ridge_on_test_hands_the_gate_to_ridge(splits):
    train, validation, test = splits
    ridge_levels = baseline_predictions(train, validation, test)["ridge"]
    noisy = ridge_levels + np.random.default_rng(0).normal(0, 0.5, ridge_levels.shape)
    # Selected on validation (lower error there), no better than ridge on test.
    candidates = [candidate("mlp", 1.0, noisy, test), candidate(RIDGE, 2.0, ridge_levels, test)]
    choice = choose(candidates, baselines(splits))
    assert choice.selected.name == "mlp" and choice.predictor.name == RIDGE
    assert "does not beat ridge" in choice.reason and "ridge faces the gate" in choice.reason
    metrics = judge({"model": choice.predictor.test} | baselines(splits), train, choice)
    # Ridge is not its own baseline: it is judged against the strongest of the rest, and passes.
    assert metrics.margin.reference != RIDGE
    publish, reason = gate(metrics)
    assert publish, reason
    assert metrics.predictor.model_dump() == {"name": RIDGE, "kind": "ridge"}
    assert set(metrics.choice.candidates) == {"mlp", RIDGE}


def test_ridge_selected_on_validation_is_judged_against_the_rest(splits):
    train, validation, test = splits
    ridge_levels = baseline_predictions(train, validation, test)["ridge"]
    flat = np.full(test.targets.shape, -20.0)
    choice = choose([candidate("tiny", 5.0, flat, test), candidate(RIDGE, 2.0, ridge_levels, test)], baselines(splits))
    assert choice.selected.name == choice.predictor.name == RIDGE
    metrics = judge({"model": choice.predictor.test} | baselines(splits), train, choice)
    assert metrics.margin.reference != RIDGE and gate(metrics)[0]


def test_nothing_beats_the_constants_nothing_is_published(splits):
    """On data whose features say nothing, neither a learned candidate nor ridge passes."""
    rng = np.random.default_rng(3)
    blind = [Split(rng.normal(size=s.features.shape).astype(np.float32), s.targets, s.weights) for s in splits]
    train, validation, test = blind
    ridge_levels = baseline_predictions(train, validation, test)["ridge"]
    flat = np.broadcast_to(np.median(train.targets, axis=(0, 2))[None, :, None], test.targets.shape).copy()
    reports = baselines(blind)
    choice = choose([candidate("small", 1.0, flat, test), candidate(RIDGE, 2.0, ridge_levels, test)], reports)
    assert choice.predictor.name == "small"  # ridge does not beat the rest either: no hand-over
    assert not gate(judge({"model": choice.predictor.test} | reports, train, choice))[0]


def test_with_evaluation_songs_the_metric_users_hear_selects(splits):
    """A run with evaluation songs selects by the share of the ceiling's SDR improvement the
    gains recover on the validation songs, not by level error; without a share for every
    candidate, by level error."""
    import dataclasses

    train, validation, test = splits
    ridge_levels = baseline_predictions(train, validation, test)["ridge"]
    truth = np.where(test.weights > 0, test.targets, ridge_levels)
    better = ridge_levels + 0.8 * (truth - ridge_levels)
    mlp, ridge = candidate("mlp", 1.0, better, test), candidate(RIDGE, 2.0, ridge_levels, test)
    heard = [dataclasses.replace(mlp, validation_audio_share=0.81), dataclasses.replace(ridge, validation_audio_share=0.86)]
    choice = choose(heard, baselines(splits))
    assert choice.selected.name == choice.predictor.name == RIDGE
    assert "ridge recovers the most of the ceiling's SDR improvement on the validation songs (0.86; mlp 0.81)" in choice.reason
    assert choice.figures().candidates["mlp"].validation_audio_share == 0.81
    unheard = [dataclasses.replace(mlp, validation_audio_share=float("nan")), heard[1]]
    assert select(unheard).name == "mlp" and select([mlp, ridge]).name == "mlp"
