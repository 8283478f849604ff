"""The publishing gate: baselines first, then the champion on the champion's own data."""

from app.stem_models.service import gate


def report(sdr_median: float, score_mean: float) -> dict:
    return {"overall": {"sdr": {"median": sdr_median}, "score": {"mean": score_mean}}}


METRICS = {"model": report(3.0, 0.64), "zeros": report(-60.0, 0.0), "train_mean": report(1.1, 0.61)}


def test_first_model_needs_only_to_beat_the_baselines():
    assert gate(METRICS, None, None) == (True, gate(METRICS, None, None)[1])
    assert "no champion yet" in gate(METRICS, None, None)[1]


def test_a_model_that_loses_to_a_baseline_is_rejected_with_the_figures():
    weak = {**METRICS, "model": report(0.5, 0.62)}
    publish, reason = gate(weak, None, None)
    assert not publish and "train_mean" in reason and "0.50 vs 1.10" in reason


def test_the_champion_must_be_beaten_on_its_own_data():
    assert gate(METRICS, report(3.5, 0.66), report(3.2, 0.65))[0]
    publish, reason = gate(METRICS, report(3.1, 0.66), report(3.2, 0.65))
    assert not publish and "champion" in reason
