"""Several predictors fitted on one split; validation picks the one that faces the gate.

A run names the learned candidates it trains (training/model.py CANDIDATES: the transformer's
sizes and a per-step MLP, each with its own hyperparameters); ridge regression is always one.
Each is a Keras model with the same input and output, so one export, one loader in the kit and
one judgement serve them all: ridge is a normalisation and a dense layer holding its
coefficients. The candidate whose gains recover the most of the ceiling's SDR improvement on
the run's validation songs is selected (when the run has evaluation songs: the metric users
hear), else the one with the lowest validation level error; nothing is selected on the test split.

Layout of a run's directory: one folder per candidate (`<run_dir>/<name>/`), each with what
training/train.py checkpoints, so a run resumes on another worker in the candidate it was in.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
from keras import layers

from training.contract import STEMS
from training.features import FEATURE_DIM, MAX_STEPS, Split
from training.judgement import CandidateFigures, ChoiceFigures, Predictor
from training.metrics import Report, Ridge, evaluate, paired_margin, select_ridge, strongest_baseline
from training.model import CANDIDATES, INPUT_NAME, OUTPUT_NAME, ModelConfig, predict
from training.train import BEST_WEIGHTS, LAST_CHECKPOINT, EpochProgress, TrainingResult, load_best_model, train

RIDGE = "ridge"


def kind_of(name: str) -> str:
    """ "transformer", "mlp" or "ridge": what the manifest and the dashboard call a candidate."""
    return RIDGE if name == RIDGE else CANDIDATES[name].architecture


def ridge_model(ridge: Ridge) -> keras.Model:
    """Ridge regression as a Keras model with the learned candidates' input and output."""
    inputs = keras.Input(shape=(MAX_STEPS, FEATURE_DIM), name=INPUT_NAME)
    normalised = layers.Normalization(axis=-1, mean=ridge.mean, variance=ridge.scale**2, name="normalise")(inputs)
    dense = layers.Dense(len(STEMS), name="ridge")
    levels = dense(normalised)
    dense.set_weights([ridge.coefficients[:, :-1].T.astype(np.float32), ridge.coefficients[:, -1].astype(np.float32)])
    return keras.Model(inputs, layers.Permute((2, 1), name=OUTPUT_NAME)(levels), name="ridge")


def candidate_config(name: str, epochs: int, overrides: dict | None = None) -> ModelConfig:
    """A learned candidate's own configuration, but for the epochs and what the run sets."""
    return replace(CANDIDATES[name], epochs=epochs, **(overrides or {}))


def train_candidates(
    names: Sequence[str],
    train_split: Split,
    validation: Split,
    run_dir: Path,
    *,
    epochs: int,
    overrides: dict | None = None,
    seed: int = 0,
    on_epoch: Callable[[str, EpochProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, TrainingResult]:
    """Fits ridge and trains each learned candidate in `names` (resuming where a checkpoint is);
    returns each learned candidate's training. `overrides` (batch size, learning rate) apply to
    every learned candidate."""
    ridge_dir = run_dir / RIDGE
    if not (ridge_dir / LAST_CHECKPOINT).exists():
        ridge_dir.mkdir(parents=True, exist_ok=True)
        model = ridge_model(select_ridge(train_split, validation))
        model.save_weights(ridge_dir / BEST_WEIGHTS)
        model.save(ridge_dir / LAST_CHECKPOINT)
    results = {}
    for name in names:
        if should_stop and should_stop():
            break
        results[name] = train(
            train_split,
            validation,
            candidate_config(name, epochs, overrides),
            run_dir / name,
            on_epoch=(lambda progress, name=name: on_epoch(name, progress)) if on_epoch else None,
            should_stop=should_stop,
            seed=seed,
        )
    return results


def load_candidate(run_dir: Path, name: str) -> keras.Model:
    return load_best_model(run_dir / name)


@dataclass(frozen=True)
class Candidate:
    name: str
    kind: str
    validation_error_db: float
    test: Report
    # The share of the ceiling's SDR improvement its gains recover on the run's validation songs
    # (training/audio_eval.py); None when the run has no evaluation songs.
    validation_audio_share: float | None = None


def load_candidates(run_dir: Path, names: Sequence[str]) -> dict[str, keras.Model]:
    """The learned candidates in `names` and ridge, each with its best weights."""
    return {name: load_candidate(run_dir, name) for name in [*names, RIDGE]}


def judge_candidates(models: dict[str, keras.Model], validation: Split, test: Split) -> list[Candidate]:
    """Every candidate's validation level error (what selects) and test report (what is shown)."""
    candidates = []
    for name, model in models.items():
        validation_error = evaluate(validation, predict(model, validation.features)).level_error_db
        candidates.append(Candidate(name, kind_of(name), validation_error, evaluate(test, predict(model, test.features))))
    return candidates


def select(candidates: Sequence[Candidate]) -> Candidate:
    """On audio when the run has evaluation songs: the candidate whose gains recover the most of
    the ceiling's SDR improvement on the validation songs (the metric users hear); else the
    lowest validation level error. Ridge on a tie: the simpler one."""
    by_audio = _by_audio(candidates)

    def score(c: Candidate) -> float:
        value = -c.validation_audio_share if by_audio else c.validation_error_db
        return value if np.isfinite(value) else np.inf

    best = min(score(c) for c in candidates)
    tied = [c for c in candidates if score(c) == best]
    return next((c for c in tied if c.name == RIDGE), tied[0])


def _by_audio(candidates: Sequence[Candidate]) -> bool:
    """Whether every candidate has a validation audio share to be compared by."""
    return all(c.validation_audio_share is not None and np.isfinite(c.validation_audio_share) for c in candidates)


def _why_selected(selected: Candidate, candidates: Sequence[Candidate]) -> str:
    others = [c for c in candidates if c is not selected]
    if _by_audio(candidates):
        return (
            f"{selected.name} recovers the most of the ceiling's SDR improvement on the validation songs "
            f"({selected.validation_audio_share:.2f}; "
            + ", ".join(f"{c.name} {c.validation_audio_share:.2f}" for c in others)
            + ")"
        )
    return (
        f"{selected.name} has the lowest validation level error ({selected.validation_error_db:.2f} dB; "
        + ", ".join(f"{c.name} {c.validation_error_db:.2f}" for c in others)
        + ")"
    )


@dataclass(frozen=True)
class Choice:
    """Which candidate faces the gate, and why."""

    candidates: list[Candidate]
    selected: Candidate  # the best on validation (select)
    predictor: Candidate  # what faces the gate: the selected one, or ridge when it does not beat ridge on test
    reason: str

    def figures(self) -> ChoiceFigures:
        """The choice as the run's judgement stores it."""
        return ChoiceFigures(
            selected=self.selected.name,
            predictor=Predictor(name=self.predictor.name, kind=self.predictor.kind),
            reason=self.reason,
            candidates={
                c.name: CandidateFigures(
                    kind=c.kind,
                    validation_error_db=c.validation_error_db,
                    test_error_db=c.test.level_error_db,
                    presence_auc=c.test.presence_auc,
                    validation_audio_share=c.validation_audio_share,
                )
                for c in self.candidates
            },
        )


def choose(candidates: Sequence[Candidate], baselines: dict[str, Report]) -> Choice:
    """The selected candidate faces the gate, unless it is learned and does not beat the
    strongest baseline on test while ridge beats the rest: then ridge, the best honest predictor
    the run has, does (the published predictor beats ridge with an interval below 0, or is ridge)."""
    selected = select(candidates)
    reason = _why_selected(selected, candidates)
    if selected.name == RIDGE:
        return Choice(list(candidates), selected, selected, reason)
    reference = strongest_baseline(baselines)
    margin = paired_margin(selected.test.per_snapshot, baselines[reference].per_snapshot, reference)
    if margin.significant_win:
        return Choice(list(candidates), selected, selected, reason)
    ridge = next(c for c in candidates if c.name == RIDGE)
    rest = strongest_baseline(baselines, exclude=(RIDGE,))
    ridge_margin = paired_margin(ridge.test.per_snapshot, baselines[rest].per_snapshot, rest)
    if not ridge_margin.significant_win:
        return Choice(list(candidates), selected, selected, reason)
    reason += (
        f"; on test it does not beat {reference} (interval [{margin.low_db:+.2f}, {margin.high_db:+.2f}] dB) "
        f"and ridge beats {rest} ([{ridge_margin.low_db:+.2f}, {ridge_margin.high_db:+.2f}] dB): ridge faces the gate"
    )
    return Choice(list(candidates), selected, ridge, reason)
