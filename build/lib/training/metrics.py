"""Separation metrics on predicted stem envelopes, next to trivial baselines.

BSS-Eval with a filter length of 1 (Vincent et al. 2006), for each estimate e_j of stem j with
references s_1..s_n (the stems present in that snapshot):
  s_target = <e_j, s_j> / ||s_j||^2 * s_j              projection onto the target
  P(e_j)   = projection of e_j onto span(s_1..s_n)      (onto all the stems)
  e_interf = P(e_j) - s_target,  e_artif = e_j - P(e_j)  (the other stems, and the rest)
  SDR = 10 log10 ||s_target||^2 / ||e_interf + e_artif||^2
  SIR = 10 log10 ||s_target||^2 / ||e_interf||^2
  SAR = 10 log10 ||s_target + e_interf||^2 / ||e_artif||^2
With a filter of length 1, SDR equals SI-SDR; both are reported. Decibels are clamped to
[-DB_LIMIT, DB_LIMIT]; a silent estimate (the zeros baseline) scores -DB_LIMIT on all four.
Studio's overall score: 0.4 n(SDR) + 0.4 n(SIR) + 0.2 n(SAR), n(v) = clamp((v + 20) / 40, 0, 1).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DB_LIMIT = 60.0
_TINY = 1e-20


def _db(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    ratio = (numerator + _TINY) / (denominator + _TINY)
    return np.clip(10.0 * np.log10(ratio), -DB_LIMIT, DB_LIMIT)


def bss_eval(references: np.ndarray, estimates: np.ndarray) -> dict[str, np.ndarray]:
    """SDR, SIR, SAR and SI-SDR (dB) per source, for [sources, samples] arrays."""
    references = np.asarray(references, dtype=np.float64)
    estimates = np.asarray(estimates, dtype=np.float64)
    energy = np.einsum("it,it->i", references, references)
    gram = references @ references.T
    cross = references @ estimates.T  # [reference, estimate]
    # Least squares keeps the projection defined when two references are collinear.
    coefficients = np.linalg.lstsq(gram, cross, rcond=None)[0]
    projection = coefficients.T @ references  # [estimate, samples]
    gain = np.diag(cross) / (energy + _TINY)
    s_target = gain[:, None] * references
    e_interf = projection - s_target
    e_artif = estimates - projection
    target_energy = np.einsum("it,it->i", s_target, s_target)
    distortion = estimates - s_target
    sdr = _db(target_energy, np.einsum("it,it->i", distortion, distortion))
    sir = _db(target_energy, np.einsum("it,it->i", e_interf, e_interf))
    sar = _db(np.einsum("it,it->i", projection, projection), np.einsum("it,it->i", e_artif, e_artif))
    result = {"sdr": sdr, "sir": sir, "sar": sar, "si_sdr": si_sdr(references, estimates)}
    # A silent estimate has no projection on its target: every ratio is 0/0. It separated
    # nothing, so it scores the floor rather than the 0 dB that 0/0 -> 1 would give it.
    silent = np.einsum("it,it->i", estimates, estimates) <= _TINY
    for values in result.values():
        values[silent] = -DB_LIMIT
    return result


def si_sdr(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """Scale-invariant SDR per source (Le Roux et al. 2019), computed on its own."""
    gain = np.einsum("it,it->i", estimates, references) / (np.einsum("it,it->i", references, references) + _TINY)
    target = gain[:, None] * references
    noise = estimates - target
    return _db(np.einsum("it,it->i", target, target), np.einsum("it,it->i", noise, noise))


def studio_score(sdr: np.ndarray, sir: np.ndarray, sar: np.ndarray) -> np.ndarray:
    def n(value: np.ndarray) -> np.ndarray:
        return np.clip((value + 20.0) / 40.0, 0.0, 1.0)

    return 0.4 * n(sdr) + 0.4 * n(sir) + 0.2 * n(sar)


@dataclass(frozen=True)
class Report:
    """Per stem and overall, the mean and median of each metric over snapshots."""

    per_stem: dict[str, dict[str, dict[str, float]]]  # stem -> metric -> {"mean", "median", "count"}
    overall: dict[str, dict[str, float]]  # metric -> {"mean", "median"}

    def as_dict(self) -> dict:
        return {"per_stem": self.per_stem, "overall": self.overall}


METRICS = ("sdr", "sir", "sar", "si_sdr", "score")


def evaluate(targets: np.ndarray, predictions: np.ndarray, masks: np.ndarray, stems: Sequence[str]) -> Report:
    """Metrics over snapshots: targets and predictions [n, stems, steps], masks [n, stems].
    Each snapshot is scored against the stems its ground truth has; silent references (no
    energy at all) cannot be scored and are skipped."""
    values: dict[str, dict[str, list[float]]] = {stem: {m: [] for m in METRICS} for stem in stems}
    for target, prediction, mask in zip(targets, predictions, masks, strict=True):
        present = np.flatnonzero((mask > 0) & (np.abs(target).sum(axis=1) > 0))
        if len(present) == 0:
            continue
        result = bss_eval(target[present], prediction[present])
        result["score"] = studio_score(result["sdr"], result["sir"], result["sar"])
        for row, stem_index in enumerate(present):
            for metric in METRICS:
                values[stems[stem_index]][metric].append(float(result[metric][row]))
    per_stem = {
        stem: {metric: _summary(values[stem][metric]) for metric in METRICS} for stem in stems if values[stem]["sdr"]
    }
    overall = {
        metric: _summary([v for stem in stems for v in values[stem][metric]]) for metric in METRICS
    }
    return Report(per_stem=per_stem, overall=overall)


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": float("nan"), "median": float("nan"), "count": 0}
    return {"mean": float(np.mean(values)), "median": float(np.median(values)), "count": len(values)}


def baseline_predictions(train_targets: np.ndarray, train_masks: np.ndarray, count: int) -> dict[str, np.ndarray]:
    """The trivial predictors every report is compared with: silence, and each stem's mean
    training envelope (over the snapshots that have that stem)."""
    weights = train_masks[:, :, None]
    mean = (train_targets * weights).sum(axis=0) / np.maximum(weights.sum(axis=0), 1.0)
    return {
        "zeros": np.zeros((count, *train_targets.shape[1:]), dtype=np.float32),
        "train_mean": np.broadcast_to(mean, (count, *mean.shape)).astype(np.float32),
    }
