"""Judging predicted stem levels, beside baselines that a useful model must beat.

Every figure is over the known cells (stem x step with weight 1, features.py):
  level_error_db    the primary metric: mean |predicted - true level| in dB, averaged per
                    snapshot and then over snapshots (so the bootstrap resamples snapshots).
                    Silent stems are scored (their target is the floor), so predicting a stem
                    where there is none costs as much as missing one that plays.
  present_error_db  the same over cells where the stem is present (level > PRESENT_DB).
  presence_auc      how well the predicted level ranks present above absent cells, per stem.
  false_activity    share of absent cells predicted present; missed: present predicted absent.
  corrections_met   share of the cells users' corrections bound where the predicted level
                    obeys the bound (features.correction_bound): do the gains move the way
                    users corrected?

Baselines, fitted on the training split and scored on the same snapshots as the model:
  silence     every stem at the floor            mix_copy   every stem as loud as the mix (0 dB)
  train_mean  each stem's mean training level    mix_share  the mix's level times each stem's
  train_median  ... and median (the best                    mean power share (dB of the mean ratio)
              constant for an absolute error)
  ridge       ridge regression of each stem's level on the same step features (its penalty
              chosen on the validation split)
A model earns publication only by beating the strongest of them by a margin whose bootstrap 95%
interval excludes 0 (training/judgement.py's gate).
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from training.contract import STEMS
from training.features import FEATURE_DIM, LEVEL_CEILING_DB, LEVEL_FLOOR_DB, PRESENT_DB, VALID_COLUMN, Split

PRIMARY = "level_error_db"
BASELINES = ("silence", "mix_copy", "train_mean", "train_median", "mix_share", "ridge")
RIDGE_PENALTIES = (0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass(frozen=True)
class StemFigures:
    level_error_db: float
    present_error_db: float
    presence_auc: float  # NaN when the test cells are all present or all absent
    false_activity: float
    missed: float
    cells: int


@dataclass(frozen=True)
class Report:
    level_error_db: float  # mean over snapshots of each snapshot's mean error
    present_error_db: float
    presence_auc: float  # mean over stems that have both classes
    false_activity: float
    snapshots: int
    per_snapshot: list[float]  # each snapshot's level error (NaN when it has no known cell)
    per_stem: dict[str, StemFigures]
    corrections_met: float  # share of the cells users' corrections bound where the level obeys
    corrected_cells: int
    corrections_met_per_snapshot: list[float]  # each snapshot's share (NaN when nothing is bounded)

    def as_dict(self) -> dict:
        return asdict(self)


def presence_auc(scores: np.ndarray, present: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    positives, negatives = int(present.sum()), int((~present).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    from scipy.stats import rankdata  # here: the API imports this module for its types and lacks SciPy

    ranks = rankdata(scores)  # tied scores share their average rank
    return float((ranks[present].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def evaluate(split: Split, predictions: np.ndarray) -> Report:
    """Figures of predictions [n, stems, steps] (dB) against a split's targets."""
    predictions = np.clip(predictions, LEVEL_FLOOR_DB, LEVEL_CEILING_DB)
    known = split.weights > 0
    error = np.abs(predictions - split.targets)
    counts = known.sum(axis=(1, 2))
    per_snapshot = np.where(counts > 0, (error * known).sum(axis=(1, 2)) / np.maximum(counts, 1), np.nan)
    present, predicted_present = split.targets > PRESENT_DB, predictions > PRESENT_DB
    per_stem = {}
    for index, stem in enumerate(STEMS):
        cells = known[:, index]
        if not cells.any():
            continue
        truth, guess, e = present[:, index][cells], predicted_present[:, index][cells], error[:, index][cells]
        per_stem[stem] = StemFigures(
            level_error_db=_mean(e),
            present_error_db=_mean(e[truth]),
            presence_auc=presence_auc(predictions[:, index][cells], truth),
            false_activity=_mean(guess[~truth].astype(float)),
            missed=_mean((~guess[truth]).astype(float)),
            cells=int(cells.sum()),
        )
    aucs = [f.presence_auc for f in per_stem.values() if np.isfinite(f.presence_auc)]
    bounded = split.bounded
    obeyed = (predictions >= split.bounds[..., 0]) & (predictions <= split.bounds[..., 1])
    bounded_counts = bounded.sum(axis=(1, 2))
    met_per_snapshot = np.where(bounded_counts > 0, (obeyed & bounded).sum(axis=(1, 2)) / np.maximum(bounded_counts, 1), np.nan)
    return Report(
        level_error_db=float(np.nanmean(per_snapshot)) if np.isfinite(per_snapshot).any() else float("nan"),
        present_error_db=_mean(error[known & present]),
        presence_auc=float(np.mean(aucs)) if aucs else float("nan"),
        false_activity=_mean(predicted_present[known & ~present].astype(float)),
        snapshots=int((counts > 0).sum()),
        per_snapshot=[float(v) for v in per_snapshot],
        per_stem=per_stem,
        corrections_met=_mean(obeyed[bounded].astype(float)),
        corrected_cells=int(bounded.sum()),
        corrections_met_per_snapshot=[float(v) for v in met_per_snapshot],
    )


# --- baselines --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ridge:
    """Per-stem ridge regression of the level on one step's features (standardised)."""

    mean: np.ndarray
    scale: np.ndarray
    coefficients: np.ndarray  # [stems, dim + 1]
    penalty: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        x = (features.reshape(-1, FEATURE_DIM) - self.mean) / self.scale
        levels = x @ self.coefficients[:, :-1].T + self.coefficients[:, -1]
        return levels.reshape(*features.shape[:2], len(STEMS)).transpose(0, 2, 1)


def fit_ridge(train: Split, penalty: float) -> Ridge:
    x = train.features.reshape(-1, FEATURE_DIM).astype(np.float64)
    inside = x[:, VALID_COLUMN] > 0.5
    mean = x[inside].mean(axis=0) if inside.any() else np.zeros(FEATURE_DIM)
    scale = x[inside].std(axis=0) if inside.any() else np.ones(FEATURE_DIM)
    scale = np.where(scale < 1e-6, 1.0, scale)
    design = np.concatenate([(x - mean) / scale, np.ones((len(x), 1))], axis=1)
    coefficients = np.zeros((len(STEMS), FEATURE_DIM + 1))
    regulariser = penalty * np.eye(FEATURE_DIM + 1)
    regulariser[-1, -1] = 0.0  # the intercept is not shrunk
    for index in range(len(STEMS)):
        w = train.weights[:, index].reshape(-1).astype(np.float64)
        if w.sum() == 0:
            coefficients[index, -1] = LEVEL_FLOOR_DB
            continue
        y = train.targets[:, index].reshape(-1).astype(np.float64)
        gram = design.T @ (design * w[:, None]) + regulariser
        coefficients[index] = np.linalg.solve(gram, design.T @ (w * y))
    return Ridge(mean, scale, coefficients, penalty)


def select_ridge(train: Split, validation: Split, penalties: Sequence[float] = RIDGE_PENALTIES) -> Ridge:
    """The ridge whose penalty scores best on the validation split (never on test)."""
    fits = [fit_ridge(train, p) for p in penalties]
    if len(validation) == 0:
        return fits[len(fits) // 2]
    errors = [evaluate(validation, fit.predict(validation.features)).level_error_db for fit in fits]
    return fits[int(np.nanargmin(errors))]


def baseline_predictions(train: Split, validation: Split, test: Split) -> dict[str, np.ndarray]:
    """Each baseline's predictions [n, stems, steps] for the test snapshots."""
    shape = test.targets.shape
    known = train.weights > 0
    count = np.maximum(known.sum(axis=(0, 2)), 1)
    mean_db = np.where(known.any(axis=(0, 2)), (train.targets * known).sum(axis=(0, 2)) / count, LEVEL_FLOOR_DB)
    median_db = np.array(
        [np.median(train.targets[:, i][known[:, i]]) if known[:, i].any() else LEVEL_FLOOR_DB for i in range(len(STEMS))]
    )
    mean_share = (10 ** (train.targets / 10) * known).sum(axis=(0, 2)) / count
    share_db = np.clip(10 * np.log10(np.maximum(mean_share, 1e-12)), LEVEL_FLOOR_DB, LEVEL_CEILING_DB)
    return {
        "silence": np.full(shape, LEVEL_FLOOR_DB, np.float32),
        "mix_copy": np.zeros(shape, np.float32),
        "train_mean": np.broadcast_to(mean_db[None, :, None], shape).astype(np.float32),
        "train_median": np.broadcast_to(median_db[None, :, None], shape).astype(np.float32),
        "mix_share": np.broadcast_to(share_db[None, :, None], shape).astype(np.float32),
        "ridge": select_ridge(train, validation).predict(test.features).astype(np.float32),
    }


def baseline_reports(train: Split, validation: Split, test: Split) -> dict[str, Report]:
    """Each baseline, fitted on train (ridge's penalty on validation), judged on test."""
    return {name: evaluate(test, predictions) for name, predictions in baseline_predictions(train, validation, test).items()}


# --- the comparison the gate decides on -------------------------------------------------------


@dataclass(frozen=True)
class Margin:
    """Candidate minus reference in level error (dB; negative = the candidate is better), with a
    bootstrap 95% interval over snapshots."""

    reference: str
    difference_db: float
    low_db: float
    high_db: float
    snapshots: int

    @property
    def significant_win(self) -> bool:
        return self.high_db < 0


def paired_margin(
    candidate: Sequence[float], reference: Sequence[float], name: str, resamples: int = 4000, seed: int = 0
) -> Margin:
    a, b = np.asarray(candidate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    differences = a[both] - b[both]
    if len(differences) == 0:
        return Margin(name, float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    samples = differences[rng.integers(0, len(differences), size=(resamples, len(differences)))].mean(axis=1)
    low, high = np.percentile(samples, [2.5, 97.5])
    return Margin(name, float(differences.mean()), float(low), float(high), len(differences))


def strongest_baseline(reports: dict[str, Report], exclude: Sequence[str] = ()) -> str:
    """The baseline with the lowest level error (but those in `exclude`)."""
    scored = {name: reports[name].level_error_db for name in BASELINES if name in reports and name not in exclude}
    return min(scored, key=lambda name: scored[name])
