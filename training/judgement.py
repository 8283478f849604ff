"""A run's judgement: every figure the gate decides on and people read, in one typed shape.

`judge` makes it from the test reports (training/metrics.py) and the choice of candidates
(training/candidates.py); the evaluation stage adds how the chosen gains play on audio
(training/audio_eval.py). It is stored as JSON with the run and in the published model's
manifest, and read back with `Judgement.stored`. The gate, the API's run and model views, the
CLI and the dashboard read its fields: a figure renamed here is renamed for all of them, and a
type checker or a failing validation says where, instead of a page quietly showing dashes.

A figure that cannot be computed (an AUC over one class, a margin over no snapshot) is None:
JSON has no NaN, and Postgres' JSON columns refuse it.
"""

import logging
import math
import numbers
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from training.features import Split
from training.metrics import BASELINES, Margin, Report, paired_margin, strongest_baseline

if TYPE_CHECKING:  # training.candidates and training.audio_eval import Keras and SciPy; the API does without
    from training.audio_eval import AudioEvaluation
    from training.candidates import Choice


log = logging.getLogger(__name__)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    return value


Figure = Annotated[float | None, BeforeValidator(_finite_or_none)]


class Figures(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class StemFigures(Figures):
    level_error_db: Figure
    present_error_db: Figure
    presence_auc: Figure
    false_activity: Figure
    missed: Figure
    cells: int


class ReportFigures(Figures):
    """One predictor on the test split (training/metrics.py Report, as stored)."""

    level_error_db: Figure
    present_error_db: Figure
    presence_auc: Figure
    false_activity: Figure
    snapshots: int
    per_snapshot: list[Figure]
    per_stem: dict[str, StemFigures]
    corrections_met: Figure = None
    corrected_cells: int = 0
    corrections_met_per_snapshot: list[Figure] = []

    @classmethod
    def of(cls, report: Report) -> "ReportFigures":
        return cls.model_validate(asdict(report))


class MarginFigures(Figures):
    """The predictor minus the strongest baseline in level error (dB; negative is better), with
    its bootstrap 95% interval over test snapshots."""

    reference: str
    difference_db: Figure
    low_db: Figure
    high_db: Figure
    snapshots: int

    @property
    def significant_win(self) -> bool:
        return self.high_db is not None and self.high_db < 0


class CorrectionsTaught(Figures):
    corrections_only_snapshots: int  # training snapshots whose only label is users' corrections
    held_out_cells: int  # test cells users' corrections bound
    held_out_met: Figure  # share of them where the predictor's level obeys the bound
    baseline_held_out_met: Figure  # the same for the strongest baseline


class Predictor(Figures):
    name: str
    kind: str  # transformer, mlp or ridge


class CandidateFigures(Figures):
    kind: str
    validation_error_db: Figure
    test_error_db: Figure
    presence_auc: Figure
    validation_audio_share: Figure = None


class ChoiceFigures(Figures):
    """Which candidate faced the gate, and why (training/candidates.py Choice)."""

    selected: str
    predictor: Predictor
    reason: str
    candidates: dict[str, CandidateFigures]


class AudioHeadline(Figures):
    songs: int
    sdr_ceiling_share: Figure
    sdr_ceiling_share_low: Figure
    sdr_ceiling_share_high: Figure
    worst_stem_worse_share: Figure
    sir_oracle_share: Figure
    sir_oracle_share_low: Figure
    sir_oracle_share_high: Figure
    model_sir_gain_db: Figure
    oracle_sir_gain_db: Figure
    model_sdr_gain_db: Figure
    oracle_sdr_gain_db: Figure


class AudioStemFigures(Figures):
    """Medians over songs of each system's SDR and SIR (BSS-Eval) and SDR (MDX), for one stem."""

    songs: int
    filters_sdr: Figure
    filters_sir: Figure
    model_sdr: Figure
    model_sir: Figure
    oracle_sdr: Figure
    oracle_sir: Figure
    ceiling_sdr: Figure
    ceiling_sir: Figure
    model_sdr_gain: Figure
    oracle_sdr_gain: Figure
    sdr_oracle_share: Figure
    model_sir_gain: Figure
    oracle_sir_gain: Figure
    sir_oracle_share: Figure
    filters_sdr_mdx: Figure
    model_sdr_mdx: Figure
    ceiling_sdr_mdx: Figure
    sdr_ceiling_share: Figure
    worse_share: Figure


class AudioJudgement(Figures):
    """The chosen predictor's gains played on the held-out half of the evaluation songs, only on
    the stems whose gains helped on the other half."""

    headline: AudioHeadline
    per_stem: dict[str, AudioStemFigures]
    skipped: list[str]
    songs_dir: str
    applied_stems: list[str]
    validation_songs: int

    @classmethod
    def of(cls, validation: "AudioEvaluation", test: "AudioEvaluation", songs_dir: str) -> "AudioJudgement":
        applied = validation.helpful_stems()
        played = test.applied_only(applied)
        return cls(
            headline=AudioHeadline.model_validate(played.headline),
            per_stem=played.per_stem(),
            skipped=played.skipped,
            songs_dir=songs_dir,
            applied_stems=applied,
            validation_songs=len(validation.songs),
        )


class Judgement(Figures):
    """Everything a run was judged by, on its test split (nothing was selected on it)."""

    model: ReportFigures  # the predictor that faces the gate
    baselines: dict[str, ReportFigures]
    margin: MarginFigures
    corrections: CorrectionsTaught
    choice: ChoiceFigures | None = None  # None for a model judged alone (fabric evaluate)
    audio: AudioJudgement | None = None  # None when the run had no evaluation songs

    @model_validator(mode="before")
    @classmethod
    def _baselines_beside_the_model(cls, data: Any) -> Any:
        """Runs judged before the baselines had a key of their own stored them beside "model"."""
        if isinstance(data, dict) and "baselines" not in data:
            data = {k: v for k, v in data.items() if k not in BASELINES} | {
                "baselines": {k: v for k, v in data.items() if k in BASELINES}
            }
        return data

    @classmethod
    def stored(cls, value: "dict | Judgement | None") -> "Judgement | None":
        """A stored judgement, or None when there is none or it was made by an earlier feature
        version's metrics (nothing in it compares with today's)."""
        if isinstance(value, Judgement) or not value:
            return value or None
        try:
            return cls.model_validate(value)
        except ValidationError as error:
            if "margin" in value:  # today's shape, yet unreadable: a bug to hear about, not an old run
                log.warning("a stored judgement does not read as one: %s", error)
            return None

    def stored_form(self) -> dict:
        return self.model_dump(mode="json")

    @property
    def predictor(self) -> Predictor | None:
        return self.choice.predictor if self.choice else None

    @property
    def reference(self) -> ReportFigures:
        """The strongest baseline, which the margin is measured from."""
        return self.baselines[self.margin.reference]

    def reports(self) -> dict[str, ReportFigures]:
        """The predictor ("model"), then the baselines from the strongest."""
        ranked = sorted(self.baselines.items(), key=lambda item: _or_inf(item[1].level_error_db))
        return {"model": self.model, **dict(ranked)}

    @property
    def applied_stems(self) -> list[str] | None:
        return self.audio.applied_stems if self.audio else None

    def corrections_summary(self) -> str:
        """One line on what users' corrections taught the run."""
        c = self.corrections
        met = (
            "no test snapshot was corrected"
            if not c.held_out_cells
            else (
                f"on the test split the model obeys {_number(c.held_out_met, 3)} of the {c.held_out_cells} cells users' "
                f"corrections bound ({self.margin.reference}: {_number(c.baseline_held_out_met, 3)})"
            )
        )
        return f"trained with {c.corrections_only_snapshots} snapshots whose only label is users' corrections; {met}"

    def figures(self) -> str:
        """The gate's figures in one line: the predictor, its error, the margin and what corrections taught."""
        m = self.margin
        line = (
            f"level error {_number(self.model.level_error_db)} dB vs {_number(self.reference.level_error_db)} dB for "
            f"{m.reference}, difference {_signed(m.difference_db)} dB, 95% interval [{_signed(m.low_db)}, {_signed(m.high_db)}] "
            f"over {m.snapshots} test snapshots; {self.corrections_summary()}"
        )
        return f"{self.choice.predictor.name} ({self.choice.reason}): {line}" if self.choice else line

    def table(self) -> list[str]:
        """The judgement as lines of text, for a terminal."""
        lines = [f"{'':14}{'level error dB':>15}{'present err dB':>15}{'presence AUC':>13}{'false activity':>15}"]
        for name, report in self.reports().items():
            lines.append(
                f"{name:14}{_number(report.level_error_db):>15}{_number(report.present_error_db):>15}"
                f"{_number(report.presence_auc, 3):>13}{_number(report.false_activity, 3):>15}"
            )
        if self.choice:
            lines.append("candidates (validation level error, test level error, dB):")
            for name, c in self.choice.candidates.items():
                lines.append(f"  {name:12}{_number(c.validation_error_db):>8}{_number(c.test_error_db):>8}")
            lines.append(f"model = {self.choice.predictor.name}: {self.choice.reason}")
        m = self.margin
        lines.append(
            f"model - {m.reference}: {_signed(m.difference_db)} dB, 95% interval [{_signed(m.low_db)}, {_signed(m.high_db)}] "
            f"over {m.snapshots} test snapshots"
        )
        if self.audio and self.audio.headline.songs:
            h = self.audio.headline
            # The figures are as Studio plays them: an unapplied stem is its filter stem, made worse
            # in no song, so the headline's worst stem is the worst applied one.
            worst = h.worst_stem_worse_share if self.audio.applied_stems else None
            lines.append(
                f"audio, {h.songs} held-out songs (gains applied to {', '.join(self.audio.applied_stems) or 'no stem'}): "
                f"the gains recover {_number(h.sdr_ceiling_share)} of the ceiling's SDR improvement over filters, 95% "
                f"interval [{_number(h.sdr_ceiling_share_low)}, {_number(h.sdr_ceiling_share_high)}]"
                + (f"; an applied stem is made worse in at most {worst:.2f} of the songs" if worst is not None else "")
            )
        lines.append(self.corrections_summary())
        return lines


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def judge(reports: dict[str, Report], train: Split, choice: "Choice | None" = None) -> Judgement:
    """A run's judgement from the test reports ("model" is the predictor that faces the gate,
    the others are baselines): the margin over the strongest baseline (other than the predictor
    itself: ridge is not its own baseline), which candidate was chosen and why, and what users'
    corrections taught."""
    model = reports["model"]
    baselines = {name: report for name, report in reports.items() if name != "model"}
    itself = (choice.predictor.name,) if choice is not None and choice.predictor.name in baselines else ()
    reference = strongest_baseline(baselines, exclude=itself)
    margin: Margin = paired_margin(model.per_snapshot, baselines[reference].per_snapshot, reference)
    return Judgement(
        model=ReportFigures.of(model),
        baselines={name: ReportFigures.of(report) for name, report in baselines.items()},
        margin=MarginFigures.model_validate(asdict(margin)),
        corrections=CorrectionsTaught(
            corrections_only_snapshots=int(train.corrections_only.sum()),
            held_out_cells=model.corrected_cells,
            held_out_met=model.corrections_met,
            baseline_held_out_met=baselines[reference].corrections_met,
        ),
        choice=choice.figures() if choice is not None else None,
    )


def gate(
    judgement: Judgement, candidate_on_champion_data: Report | None = None, champion_on_its_data: Report | None = None
) -> tuple[bool, str]:
    """(publish?, why): the predictor must beat the strongest baseline by a margin whose 95%
    interval lies below 0, and, when there is a champion, do no worse than it on the champion's
    test data (both models' reports on it)."""
    margin, figures = judgement.margin, judgement.figures()
    if margin.difference_db is None:
        return False, "no test snapshot had a known stem level: nothing to judge on"
    if not margin.significant_win:
        return False, f"does not beat the strongest baseline ({margin.reference}) with a margin above 0: {figures}"
    if candidate_on_champion_data is None or champion_on_its_data is None:
        return True, f"beats the strongest baseline ({margin.reference}): {figures}; no champion yet"
    candidate, champion = candidate_on_champion_data.level_error_db, champion_on_its_data.level_error_db
    if candidate <= champion:
        return (
            True,
            f"beats the strongest baseline: {figures}; and the champion on its test data ({candidate:.2f} vs {champion:.2f} dB)",
        )
    return False, f"beats the baselines ({figures}) but not the champion on its test data: {candidate:.2f} vs {champion:.2f} dB"
