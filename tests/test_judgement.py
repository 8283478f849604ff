"""A run's judgement in its one typed shape: made by `judge`, stored as JSON and read back equal,
readable from the flat shape runs stored before, printed for a terminal, and summed up in the
headline Studio and operators read."""

import json

import numpy as np
import pytest

from app.stem_models.schemas import Headline
from tests.support.splits import level_data
from training.audio_eval import SYSTEMS, AudioEvaluation, SongResult
from training.contract import STEMS
from training.judgement import AudioJudgement, Judgement, judge
from training.metrics import BASELINES, baseline_reports, evaluate


@pytest.fixture(scope="module")
def judged() -> Judgement:
    train, validation, test = level_data(20, 80), level_data(21, 30), level_data(22, 30)
    model = test.targets + np.random.default_rng(0).normal(0, 2, test.targets.shape)
    return judge({"model": evaluate(test, model)} | baseline_reports(train, validation, test), train)


def played(seed: int, songs: int, model_helps: dict[str, float]) -> AudioEvaluation:
    """Scores of songs where the model's gains raise each stem's SDR by about `model_helps[stem]` dB."""
    rng = np.random.default_rng(seed)
    results = []
    for index in range(songs):
        scores: dict = {}
        for system in SYSTEMS:
            lift = {"filters": 0.0, "oracle": 3.0, "ceiling": 4.0}
            scores[system] = {
                stem: {
                    metric: 5.0 + (model_helps[stem] if system == "model" else lift[system]) + rng.normal(0, 0.1)
                    for metric in ("sdr", "sir", "sdr_mdx")
                }
                for stem in STEMS
            }
        results.append(SongResult(f"song-{seed}-{index}", scores))
    return AudioEvaluation(results, [])


def test_a_judgement_is_stored_as_json_and_read_back_equal(judged):
    stored = json.loads(json.dumps(judged.stored_form(), allow_nan=False))  # JSON has no NaN: Postgres refuses it
    assert Judgement.stored(stored) == judged
    assert set(judged.baselines) == set(BASELINES) and judged.margin.reference in judged.baselines
    assert judged.reference.level_error_db == min(b.level_error_db for b in judged.baselines.values())


def test_a_figure_that_cannot_be_computed_is_none(judged):
    """Every test cell present: presence AUC is undefined for each stem (NaN in the report)."""
    test = level_data(23, 10)
    present = type(test)(test.features, np.full_like(test.targets, -5.0), test.weights)
    figures = judge({"model": evaluate(present, present.targets)} | {"silence": evaluate(present, present.targets - 90)}, present)
    assert figures.model.presence_auc is None and figures.model.per_stem["vocals"].presence_auc is None
    json.dumps(figures.stored_form(), allow_nan=False)


def test_runs_stored_with_the_baselines_beside_the_model_still_read(judged, caplog):
    flat = {k: v for k, v in judged.stored_form().items() if k != "baselines"} | judged.stored_form()["baselines"]
    assert Judgement.stored(flat) == judged
    # An earlier feature version's metrics compare with nothing today: no judgement, not an error.
    assert Judgement.stored({"model": {"mae_db": 3.0}, "baseline_mean": {"mae_db": 4.0}}) is None
    assert Judgement.stored(None) is None and Headline.of(None) == Headline()
    assert "does not read" not in caplog.text
    # Today's shape that does not read is a bug: said in the log, not taken for an old run silently.
    broken = judged.stored_form() | {"corrections": {"held_out_cells": "many"}}
    assert Judgement.stored(broken) is None and "a stored judgement does not read as one" in caplog.text


def test_the_headline_reads_the_judgement(judged):
    headline = Headline.of(judged)
    assert headline.level_error_db == judged.model.level_error_db and headline.baseline == judged.margin.reference
    assert headline.baseline_error_db == judged.reference.level_error_db
    assert (headline.margin_low_db, headline.margin_high_db) == (judged.margin.low_db, judged.margin.high_db)
    assert headline.sdr_ceiling_share is None and headline.predictor is None  # no audio, judged alone


def test_the_audio_entry_applies_only_the_stems_that_helped_on_validation(judged):
    helps = {stem: 1.0 for stem in STEMS} | {"perc": -1.0}  # perc's gains make every song worse
    audio = AudioJudgement.of(played(1, 6, helps), played(2, 8, helps), "songs/")
    assert audio.applied_stems == [stem for stem in STEMS if stem != "perc"] and audio.validation_songs == 6
    # perc plays as its filter stem on the held-out songs: made worse in none of them.
    assert audio.per_stem["perc"].worse_share == 0.0 and audio.headline.worst_stem_worse_share == 0.0
    with_audio = judged.model_copy(update={"audio": audio})
    assert Judgement.stored(with_audio.stored_form()) == with_audio
    assert Headline.of(with_audio).sdr_ceiling_share == pytest.approx(audio.headline.sdr_ceiling_share)
    # Five stems' 1 dB over the six stems' 4 dB of the ceiling: perc counts at 0, as Studio plays it.
    assert audio.headline.sdr_ceiling_share == pytest.approx(5 / 24, abs=0.02)


def test_the_terminal_table_says_the_margin_and_what_the_gains_do(judged):
    printed = "\n".join(judged.table())
    m = judged.margin
    assert f"model - {m.reference}: {m.difference_db:+.2f} dB, 95% interval [{m.low_db:+.2f}, {m.high_db:+.2f}]" in printed
    assert "audio" not in printed and all(name in printed for name in BASELINES)
    helps = {stem: 1.0 for stem in STEMS}
    with_audio = judged.model_copy(update={"audio": AudioJudgement.of(played(3, 4, helps), played(4, 5, helps), "songs/")})
    printed = "\n".join(with_audio.table())
    share = with_audio.audio.headline.sdr_ceiling_share
    assert f"audio, 5 held-out songs (gains applied to {', '.join(STEMS)}): the gains recover {share:.2f}" in printed
    assert "an applied stem is made worse in at most 0.00 of the songs" in printed
