"""Separation metrics agree with an independent implementation (fast-bss-eval, filter length 1)
and behave at the edges; baselines are what they claim to be."""

import fast_bss_eval.numpy as fast_bss_eval  # the NumPy implementation: no torch here
import numpy as np
import pytest

from training.metrics import DB_LIMIT, baseline_predictions, bss_eval, evaluate, si_sdr, studio_score

STEMS = ("vocals", "drums", "bass", "harmonic", "perc", "sub")


def random_case(rng):
    sources = int(rng.integers(2, 7))
    references = np.abs(rng.normal(size=(sources, 32))) + rng.random()
    estimates = (
        references * rng.uniform(0.5, 1.5, size=(sources, 1))
        + rng.normal(scale=rng.uniform(0.05, 1.0), size=(sources, 32))
        + 0.3 * references[rng.permutation(sources)]
    )
    return references, estimates


def test_agrees_with_fast_bss_eval_within_a_hundredth_of_a_db():
    rng = np.random.default_rng(7)
    worst = 0.0
    for _ in range(300):
        references, estimates = random_case(rng)
        ours = bss_eval(references, estimates)
        sdr, sir, sar = fast_bss_eval.bss_eval_sources(references, estimates, filter_length=1, compute_permutation=False)[:3]
        # fast-bss-eval's si_sdr picks the best permutation; ours scores each labelled head
        # against its own stem, so compare one source at a time.
        single = [fast_bss_eval.si_sdr(references[i : i + 1], estimates[i : i + 1])[0] for i in range(len(references))]
        theirs = {"sdr": sdr, "sir": sir, "sar": sar, "si_sdr": np.array(single)}
        for metric, values in theirs.items():
            worst = max(worst, np.abs(ours[metric] - np.clip(values, -DB_LIMIT, DB_LIMIT)).max())
    assert worst < 0.01


def test_perfect_estimate_hits_the_ceiling_and_silence_the_floor():
    references = np.abs(np.random.default_rng(1).normal(size=(6, 32)))
    perfect = bss_eval(references, references.copy())
    assert (perfect["sdr"] == DB_LIMIT).all() and (perfect["sir"] == DB_LIMIT).all()
    silent = bss_eval(references, np.zeros_like(references))
    for values in silent.values():
        assert (values == -DB_LIMIT).all()


def test_leaking_another_stem_lowers_sir_not_sar():
    rng = np.random.default_rng(2)
    references = np.abs(rng.normal(size=(3, 32)))
    clean = bss_eval(references, references + 0.01 * rng.normal(size=references.shape))
    leaky = references.copy()
    leaky[0] += 0.5 * references[1]
    leaked = bss_eval(references, leaky + 0.01 * rng.normal(size=references.shape))
    assert leaked["sir"][0] < clean["sir"][0] - 10
    assert abs(leaked["sar"][0] - clean["sar"][0]) < 10


def test_si_sdr_is_scale_invariant():
    rng = np.random.default_rng(3)
    references, estimates = random_case(rng)
    np.testing.assert_allclose(si_sdr(references, estimates), si_sdr(references, 7.5 * estimates))


@pytest.mark.parametrize(("sdr", "sir", "sar", "score"), [(-20, -20, -20, 0.0), (20, 20, 20, 1.0), (0, 0, 0, 0.5), (10, 15, 10, 0.8)])
def test_studio_score(sdr, sir, sar, score):
    expected = 0.4 * min(max((sdr + 20) / 40, 0), 1) + 0.4 * min(max((sir + 20) / 40, 0), 1) + 0.2 * min(max((sar + 20) / 40, 0), 1)
    assert studio_score(np.array(sdr), np.array(sir), np.array(sar)) == pytest.approx(expected)
    assert expected == pytest.approx(score, abs=0.1)


def test_evaluate_skips_absent_stems_and_reports_means_and_medians():
    rng = np.random.default_rng(4)
    targets = np.abs(rng.normal(size=(5, 6, 32)))
    masks = np.ones((5, 6))
    masks[:, 5] = 0  # no snapshot has "sub"
    report = evaluate(targets, targets + 0.1, masks, STEMS)
    assert "sub" not in report.per_stem
    assert report.per_stem["vocals"]["sdr"]["count"] == 5
    assert set(report.overall["sdr"]) == {"mean", "median", "count"}


def test_train_mean_baseline_ignores_snapshots_without_the_stem():
    targets = np.zeros((4, 6, 32))
    targets[:2, 0] = 1.0
    targets[2:, 0] = 99.0  # present in the array, but masked out
    masks = np.zeros((4, 6))
    masks[:2, 0] = 1
    baselines = baseline_predictions(targets, masks, count=3)
    assert baselines["train_mean"].shape == (3, 6, 32)
    assert (baselines["train_mean"][:, 0] == 1.0).all()
    assert (baselines["zeros"] == 0).all()
