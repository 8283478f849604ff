"""Simulated Studio users who correct stems: the labels real traffic carries, made from songs
whose true stems are known, for the benchmark and tests of learning from corrections.

A user listens to a stretch of 1-6 s of one stem and corrects it only where what they hear is
clear: masking where the stem is silent (below PRESENT_DB - 5 dB against the mix throughout),
isolation where it leads (at least -3 dB throughout), a boost where it is clearly there (as
strong as its quietest moment allows), a cut where it is quiet but not silent. A stretch that is
none of these gets no correction. A truthful user's correction is one the truth obeys over the
stretch they heard; a noisy user marks the stretch up to `range_error_s` off at each end and
gets one correction in `wrong_every` backwards (masking what plays, boosting what is silent).
Levels are heard in WINDOW_S windows: the power of all channels, against the mix's.
"""

from dataclasses import dataclass

import numpy as np

from training.contract import STEMS
from training.features import PRESENT_DB, correction_bound

WINDOW_S = 0.25
MIN_RANGE_S, MAX_RANGE_S = 1.0, 6.0


@dataclass(frozen=True)
class UserModel:
    corrections: tuple[int, int] = (1, 5)  # how many per snapshot, inclusive
    range_error_s: float = 0.0  # each end of the stretch marked up to this far off
    wrong_every: int = 0  # one correction in this many is backwards (0: never)


TRUTHFUL = UserModel()
NOISY = UserModel(range_error_s=1.0, wrong_every=10)


def window_levels(stems: dict[str, np.ndarray], sample_rate: int) -> np.ndarray:
    """[stems, windows] each stem's level against the mix (dB) per WINDOW_S window; -inf where
    the stem is silent, NaN where the mix is."""
    hop = max(1, int(WINDOW_S * sample_rate))
    length = min(audio.shape[-1] for audio in stems.values())
    windows = length // hop

    def power(audio: np.ndarray) -> np.ndarray:
        frames = np.asarray(audio, np.float64)[..., : windows * hop].reshape(-1, windows, hop)
        return (frames**2).mean(axis=(0, 2))

    mix = sum(np.asarray(a, np.float64)[..., :length] for a in stems.values())
    mix_power = power(mix)
    levels = np.full((len(STEMS), windows), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for index, stem in enumerate(STEMS):
            if stem in stems:
                levels[index] = np.where(mix_power > 1e-10, 10 * np.log10(power(stems[stem]) / mix_power), np.nan)
    return levels


def _truthful_correction(levels: np.ndarray, rng: np.random.Generator) -> tuple[str, float] | None:
    """(kind, strength) a user hearing these window levels of one stem would give, or None."""
    if np.isnan(levels).all():  # the mix is silent throughout: nothing to hear
        return None
    quietest, loudest = np.nanmin(levels), np.nanmax(levels)
    if loudest <= correction_bound("masking", 1.0)[1]:
        return "masking", float(rng.uniform(0.5, 1.0))
    if quietest >= correction_bound("isolation", 1.0)[0]:
        return "isolation", float(rng.uniform(0.5, 1.0))
    boost_at_zero = correction_bound("boost", 0.0)[0]
    if quietest >= boost_at_zero:
        strongest = min(1.0, (quietest - boost_at_zero) / (correction_bound("boost", 1.0)[0] - boost_at_zero))
        return "boost", float(rng.uniform(0.0, strongest))
    cut_at_zero = correction_bound("cut", 0.0)[1]
    if PRESENT_DB - 5 < quietest and loudest <= cut_at_zero:
        strongest = min(1.0, (cut_at_zero - loudest) / (cut_at_zero - correction_bound("cut", 1.0)[1]))
        return "cut", float(rng.uniform(0.0, strongest))
    return None


def simulate_corrections(
    stems: dict[str, np.ndarray], sample_rate: int, rng: np.random.Generator, user: UserModel = TRUTHFUL
) -> list[dict]:
    """userCorrections (docs/contract.md's wire shape) a user would make of this song."""
    levels = window_levels(stems, sample_rate)
    duration = levels.shape[1] * WINDOW_S
    wanted = int(rng.integers(user.corrections[0], user.corrections[1] + 1))
    corrections: list[dict] = []
    for _ in range(40 * wanted):  # most stretches are clear enough; give up on a song where they are not
        if len(corrections) == wanted or duration < MIN_RANGE_S:
            break
        stem = int(rng.integers(len(STEMS)))
        length = float(rng.uniform(MIN_RANGE_S, min(MAX_RANGE_S, duration)))
        first = int(rng.integers(0, int((duration - length) / WINDOW_S) + 1))
        count = max(1, int(round(length / WINDOW_S)))
        heard = _truthful_correction(levels[stem, first : first + count], rng)
        if heard is None:
            continue
        kind, strength = heard
        if user.wrong_every and rng.integers(user.wrong_every) == 0:
            kind, strength = {"masking": ("boost", 0.5), "cut": ("boost", 0.5)}.get(kind, ("masking", 1.0))
        start, end = first * WINDOW_S, (first + count) * WINDOW_S
        if user.range_error_s:
            start += float(rng.uniform(-user.range_error_s, user.range_error_s))
            end += float(rng.uniform(-user.range_error_s, user.range_error_s))
            start, end = max(0.0, start), min(duration, end)
            if end - start < 0.25:
                continue
        corrections.append(
            {
                "correctedStem": STEMS[stem],
                "correctionType": kind,
                "timeRange": [round(start, 3), round(end, 3)],
                "strength": round(strength, 3),
            }
        )
    return corrections
