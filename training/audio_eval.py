"""Does the model improve Studio's stems? Measured on multitrack songs whose true stems are known.

For each song: Studio's static filter stems of the mix (training/studio_snapshot.py), the same stems
with the model's gains over time, and with oracle gains, each scored by BSS-Eval (SDR, SIR)
against the true stems. A gain moves a filter stem's level, step by step, to a target level:
  model   the level the model predicts for that stem (dB relative to the mix) from the snapshot
          Studio would send for this mix
  oracle  the true stem's level in that step: the best any level-only gain can do
  gain(step) = sqrt(target power / filter stem power), at most 1, linearly interpolated
  between step centres, so what is scored is what Studio would play. Gains only ever turn a
  filter stem down: on development songs, letting them boost too (up to +12 dB) recovered less
  of the oracle's improvement (0.38 vs 0.44) and gave the oracle itself less (+2.7 vs +3.3 dB).
The headline is the share of the oracle's SIR improvement over filters alone that the model
recovers: per stem, median over songs of (model - filters) over median of (oracle - filters),
then the median over stems. Stems silent in the whole song cannot be scored and are skipped.

Beside it, on the metric users hear, the Music Demixing Challenge's SDR (`mdx_sdr`: the true
stem's energy over the error's, no distortion filter), judged against its true ceiling:
  ceiling the gain knots (one per step, interpolated as above, each in [0, 1]) that maximise
          that SDR for this stem and song. The output is linear in the knots, so this is a
          bounded linear least-squares problem (`ceiling_gains`): no level-only gain Studio can
          apply does better, the oracle's and filters alone (all knots 1) included.
`sdr_ceiling_share` is the share of the ceiling's SDR improvement over filters that the model's
gains recover, as a ratio of sums over songs (stable where the ceiling gains little), with a
bootstrap interval over songs; `worse_share` is the share of songs in which a stem's gains make
its SDR worse than filters alone.

Only what helps is applied: the songs are split by name into validation and test halves; a
stem's gains are applied when, on the validation songs, they raise its SDR in sum and make it
worse in at most a third of them (`helpful_stems`). The test songs are then judged as Studio
plays them: an unapplied stem is its filter stem, untouched (`applied_only`).
"""

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from training.bss_eval import bss_eval
from training.contract import STEMS
from training.features import MAX_STEPS, STEP_SECONDS, encode_features, from_wire
from training.multitrack import Song, SongError, read_song, song_folders, song_snapshot
from training.studio_snapshot import filter_stems

MAX_GAIN = 1.0  # gains only ever turn a filter stem down
SYSTEMS = ("filters", "model", "oracle", "ceiling")
MDX_DELTA = 1e-7  # the Music Demixing Challenge's guard against empty signals
MAX_WORSE_SHARE = 1 / 3  # an applied stem may make SDR worse in at most this share of songs
SILENT_STEM_POWER = 1e-10


def step_power(signal: np.ndarray, sample_rate: float) -> np.ndarray:
    """Mean square of a mono signal per step [MAX_STEPS] (0 past the end)."""
    size = int(round(STEP_SECONDS * sample_rate))
    steps = min(MAX_STEPS, -(-len(signal) // size))
    padded = np.zeros(steps * size)
    padded[: min(len(signal), steps * size)] = signal[: steps * size]
    power = np.zeros(MAX_STEPS)
    counts = np.clip(len(signal) - np.arange(steps) * size, 1, size)
    power[:steps] = (padded.reshape(steps, size) ** 2).sum(axis=1) / counts
    return power


def gain_curve(step_gains: np.ndarray, length: int, sample_rate: float) -> np.ndarray:
    """Per-sample gains from per-step gains, linear between step centres (held past the
    first and last centre, and after the last step for a track longer than the cap)."""
    centres = (np.arange(MAX_STEPS) + 0.5) * STEP_SECONDS * sample_rate
    return np.interp(np.arange(length), centres, step_gains)


def level_gains(target_power: np.ndarray, filter_power: np.ndarray) -> np.ndarray:
    gains = np.sqrt(target_power / np.maximum(filter_power, 1e-20))
    return np.clip(np.where(filter_power > 0, gains, 0.0), 0.0, MAX_GAIN)


def mdx_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """The Music Demixing Challenge's SDR in dB: 10 log10(|s|^2 / |s - e|^2), no distortion filter."""
    return float(10 * np.log10((np.sum(reference**2) + MDX_DELTA) / (np.sum((reference - estimate) ** 2) + MDX_DELTA)))


def ceiling_gains(reference: np.ndarray, filtered: np.ndarray, sample_rate: float) -> np.ndarray:
    """The step gains [MAX_STEPS] in [0, 1] whose curve (gain_curve) makes filtered closest to
    reference in squared error: the best mdx_sdr any level-only gain reaches. Each sample is a
    mix of two neighbouring knots (np.interp's weights, held past the ends), so the normal
    equations are tridiagonal; the bounded problem is solved on their Cholesky factor."""
    from scipy.optimize import lsq_linear

    position = np.clip(np.arange(len(filtered)) / (STEP_SECONDS * sample_rate) - 0.5, 0, MAX_STEPS - 1)
    left = np.minimum(np.floor(position).astype(int), MAX_STEPS - 2)
    weight = 1.0 - (position - left)  # on the left knot; the rest on left + 1
    f, b = filtered.astype(np.float64), reference.astype(np.float64)
    gram = np.zeros((MAX_STEPS, MAX_STEPS))
    diagonal_left = np.bincount(left, f * f * weight * weight, MAX_STEPS)
    diagonal_right = np.bincount(left + 1, f * f * (1 - weight) ** 2, MAX_STEPS)
    off = np.bincount(left, f * f * weight * (1 - weight), MAX_STEPS)[: MAX_STEPS - 1]
    gram[np.diag_indices(MAX_STEPS)] = diagonal_left + diagonal_right
    gram[np.arange(MAX_STEPS - 1), np.arange(1, MAX_STEPS)] = off
    gram[np.arange(1, MAX_STEPS), np.arange(MAX_STEPS - 1)] = off
    target = np.bincount(left, f * b * weight, MAX_STEPS) + np.bincount(left + 1, f * b * (1 - weight), MAX_STEPS)
    used = np.flatnonzero(np.diag(gram) > 1e-12 * max(np.diag(gram).max(), 1e-30))
    gains = np.zeros(MAX_STEPS)
    if len(used):
        system = gram[np.ix_(used, used)] + np.eye(len(used)) * 1e-12 * np.trace(gram) / len(used)
        factor = np.linalg.cholesky(system)
        gains[used] = lsq_linear(factor.T, np.linalg.solve(factor, target[used]), bounds=(0.0, 1.0)).x
    return gains


def apply_levels(stems: dict[str, np.ndarray], mix: np.ndarray, sample_rate: float, levels: np.ndarray) -> dict[str, np.ndarray]:
    """What Studio plays: each filter stem [channels, samples] times the gain curve that moves its
    level, step by step, to the predicted level ([stems, steps] dB relative to the mix
    [channels, samples]). The Studio kit's applyGains does the same (tests/test_studio_kit.py)."""
    mono_mix = mix.mean(axis=0).astype(np.float64)
    mix_power = step_power(mono_mix, sample_rate)
    played = {}
    for stem, channels in stems.items():
        filter_power = step_power(channels.mean(axis=0).astype(np.float64), sample_rate)
        target_power = mix_power * 10 ** (levels[STEMS.index(stem)] / 10)
        played[stem] = channels * gain_curve(level_gains(target_power, filter_power), channels.shape[-1], sample_rate)
    return played


@dataclass
class SongResult:
    song: str
    # system -> stem -> {"sdr", "sir"}
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


@dataclass
class AudioEvaluation:
    songs: list[SongResult]
    skipped: list[str]

    def per_stem(self, songs: list[SongResult] | None = None) -> dict[str, dict]:
        """Per stem: median SDR and SIR of each system over songs, the medians of the model's and
        the oracle's SIR improvement over filters, and the share of the oracle's it recovers."""
        out = {}
        for stem in STEMS:
            rows = [song.scores for song in (self.songs if songs is None else songs) if stem in song.scores.get("filters", {})]
            if not rows:
                continue
            figures: dict = {"songs": len(rows)}
            for system in SYSTEMS:
                for metric in ("sdr", "sir"):
                    figures[f"{system}_{metric}"] = float(np.median([r[system][stem][metric] for r in rows]))
            for metric in ("sdr", "sir"):
                model = float(np.median([r["model"][stem][metric] - r["filters"][stem][metric] for r in rows]))
                oracle = float(np.median([r["oracle"][stem][metric] - r["filters"][stem][metric] for r in rows]))
                figures[f"model_{metric}_gain"], figures[f"oracle_{metric}_gain"] = model, oracle
                figures[f"{metric}_oracle_share"] = model / oracle if oracle > 0 else float("nan")
            for system in ("filters", "model", "ceiling"):
                figures[f"{system}_sdr_mdx"] = float(np.median([r[system][stem]["sdr_mdx"] for r in rows]))
            figures["sdr_ceiling_share"] = _ceiling_share(rows, [stem])
            figures["worse_share"] = float(np.mean([r["model"][stem]["sdr_mdx"] < r["filters"][stem]["sdr_mdx"] for r in rows]))
            out[stem] = figures
        return out

    def ceiling_share(self, songs: list[SongResult] | None = None) -> float:
        """The share of the ceiling's SDR improvement over filters the model recovers, summed over
        every scored stem of every song."""
        return _ceiling_share([song.scores for song in (self.songs if songs is None else songs)], list(STEMS))

    def oracle_share(self, songs: list[SongResult] | None = None) -> float:
        """The median over stems of the share of the oracle's SIR improvement the model recovers."""
        shares = [f["sir_oracle_share"] for f in self.per_stem(songs).values() if np.isfinite(f["sir_oracle_share"])]
        return float(np.median(shares)) if shares else float("nan")

    def interval(
        self, statistic: Callable[[list[SongResult]], float], resamples: int = 1000, seed: int = 0
    ) -> tuple[float, float]:
        """Bootstrap 95% interval of statistic(songs) (oracle_share, ceiling_share), resampling songs."""
        if len(self.songs) < 2:
            return float("nan"), float("nan")
        rng = np.random.default_rng(seed)
        samples = [
            statistic([self.songs[i] for i in rng.integers(0, len(self.songs), len(self.songs))]) for _ in range(resamples)
        ]
        low, high = np.nanpercentile(samples, [2.5, 97.5])
        return float(low), float(high)

    def split(self) -> tuple["AudioEvaluation", "AudioEvaluation"]:
        """(validation, test): the songs by a hash of their names, half each."""
        from training.features import split_of

        halves = {name: [song for song in self.songs if split_of(song.song, 0.5, 0.5) == name] for name in ("validation", "test")}
        return AudioEvaluation(halves["validation"], []), AudioEvaluation(halves["test"], self.skipped)

    def helpful_stems(self) -> list[str]:
        """Stems whose gains raise SDR (MDX) over filters, summed over these songs, and make it
        worse in at most MAX_WORSE_SHARE of them."""
        return [
            stem
            for stem, f in self.per_stem().items()
            if np.isfinite(f["model_sdr_mdx"]) and _sdr_gain(self.songs, stem) > 0 and f["worse_share"] <= MAX_WORSE_SHARE
        ]

    def applied_only(self, applied: list[str]) -> "AudioEvaluation":
        """These songs as Studio plays them when only `applied` stems take the model's gains: the
        others are their filter stems, so the model's figures for them are the filters'."""
        songs = []
        for song in self.songs:
            model = {
                stem: (scores if stem in applied else song.scores["filters"][stem])
                for stem, scores in song.scores["model"].items()
            }
            songs.append(SongResult(song.song, {**song.scores, "model": model}))
        return AudioEvaluation(songs, self.skipped)

    @functools.cached_property
    def headline(self) -> dict[str, float]:
        """Computed once (its interval resamples the songs a thousand times); songs are not
        added after the evaluation."""
        stems = self.per_stem()
        low, high = self.interval(self.oracle_share)
        ceiling_low, ceiling_high = self.interval(self.ceiling_share)
        return {
            "songs": len(self.songs),
            "sdr_ceiling_share": self.ceiling_share(),
            "sdr_ceiling_share_low": ceiling_low,
            "sdr_ceiling_share_high": ceiling_high,
            "worst_stem_worse_share": max((f["worse_share"] for f in stems.values()), default=float("nan")),
            "sir_oracle_share": self.oracle_share(),
            "sir_oracle_share_low": low,
            "sir_oracle_share_high": high,
            "model_sir_gain_db": float(np.median([f["model_sir_gain"] for f in stems.values()])) if stems else float("nan"),
            "oracle_sir_gain_db": float(np.median([f["oracle_sir_gain"] for f in stems.values()])) if stems else float("nan"),
            "model_sdr_gain_db": float(np.median([f["model_sdr_gain"] for f in stems.values()])) if stems else float("nan"),
            "oracle_sdr_gain_db": float(np.median([f["oracle_sdr_gain"] for f in stems.values()])) if stems else float("nan"),
        }

    def as_dict(self) -> dict:
        return {
            "headline": self.headline,
            "per_stem": self.per_stem(),
            "songs": [asdict(s) for s in self.songs],
            "skipped": self.skipped,
        }

    def summary(self) -> str:
        lines = [f"{'stem':9}{'songs':>6}" + "".join(f"{s + ' SDR':>13}{s + ' SIR':>13}" for s in SYSTEMS) + f"{'SIR share':>11}"]
        for stem, f in self.per_stem().items():
            lines.append(
                f"{stem:9}{f['songs']:>6}"
                + "".join(f"{f[f'{s}_sdr']:>13.2f}{f[f'{s}_sir']:>13.2f}" for s in SYSTEMS)
                + f"{f['sir_oracle_share']:>11.2f}"
            )
        h = self.headline
        lines.append(
            f"{h['songs']} songs: SIR over filters alone, median over stems: model {h['model_sir_gain_db']:+.2f} dB, "
            f"oracle {h['oracle_sir_gain_db']:+.2f} dB; the model recovers {h['sir_oracle_share']:.2f} of the oracle's "
            f"improvement (median of per-stem shares; 95% interval over songs [{h['sir_oracle_share_low']:.2f}, "
            f"{h['sir_oracle_share_high']:.2f}])"
        )
        lines.append(
            f"SDR (MDX): the model recovers {h['sdr_ceiling_share']:.2f} of the ceiling's improvement over filters "
            f"(ratio of sums; 95% interval over songs [{h['sdr_ceiling_share_low']:.2f}, {h['sdr_ceiling_share_high']:.2f}]); "
            "per stem, songs made worse: " + ", ".join(f"{stem} {f['worse_share']:.2f}" for stem, f in self.per_stem().items())
        )
        return "\n".join(lines)


def evaluate_song(song: Song, predict_levels: Callable[[np.ndarray], np.ndarray]) -> SongResult:
    """Scores one song; predict_levels maps [1, steps, dim] features to [1, stems, steps] dB."""
    mix = song.mix
    length, rate = mix.shape[-1], song.sample_rate
    levels = predict_levels(encode_features(from_wire(song_snapshot(song)))[None])[0]
    filters = filter_stems(mix, rate)
    scored = [s for s in STEMS if s in song.stems and (song.stems[s].astype(np.float64) ** 2).mean() > SILENT_STEM_POWER]
    if not scored:
        raise SongError(f"{song.name}: every stem is silent")
    references = np.stack([song.stems[s].mean(axis=0) for s in scored]).astype(np.float64)
    played = apply_levels({stem: filters[stem] for stem in scored}, mix, rate, levels)
    estimates = {system: [] for system in SYSTEMS}
    for index, stem in enumerate(scored):
        filtered = filters[stem].mean(axis=0)
        filter_power = step_power(filtered, rate)
        oracle_power = step_power(references[index], rate)
        estimates["filters"].append(filtered)
        estimates["model"].append(played[stem].mean(axis=0))
        estimates["oracle"].append(filtered * gain_curve(level_gains(oracle_power, filter_power), length, rate))
        estimates["ceiling"].append(filtered * gain_curve(ceiling_gains(references[index], filtered, rate), length, rate))
    stacked = np.concatenate([np.stack(estimates[system]) for system in SYSTEMS])
    metrics = bss_eval(references, stacked, reference_of=np.tile(np.arange(len(scored)), len(SYSTEMS)))
    result = SongResult(song.name)
    for position, system in enumerate(SYSTEMS):
        rows = slice(position * len(scored), (position + 1) * len(scored))
        result.scores[system] = {
            stem: {"sdr": float(sdr), "sir": float(sir), "sdr_mdx": mdx_sdr(references[i], estimates[system][i])}
            for i, (stem, sdr, sir) in enumerate(zip(scored, metrics["sdr"][rows], metrics["sir"][rows], strict=True))
        }
    return result


def evaluate_songs(model, root: Path, on_skip: Callable[[str], None] = lambda message: None) -> AudioEvaluation:
    """Every song under root; a song that cannot be used is reported through on_skip and left out."""
    from training.model import predict

    results, skipped = [], []
    for folder in song_folders(root):
        try:
            results.append(evaluate_song(read_song(folder), lambda features: predict(model, features)))
        except SongError as error:
            skipped.append(str(error))
            on_skip(str(error))
    return AudioEvaluation(results, skipped)


def _sdr_gain(songs: list[SongResult], stem: str) -> float:
    """The model's MDX SDR gain over filters for one stem, summed over the songs that score it."""
    rows = [song.scores for song in songs if stem in song.scores.get("filters", {})]
    return float(sum(r["model"][stem]["sdr_mdx"] - r["filters"][stem]["sdr_mdx"] for r in rows))


def _ceiling_share(rows: list[dict], stems: list[str]) -> float:
    """Sum over songs and stems of the model's MDX SDR gain over filters, over the ceiling's."""
    model = ceiling = 0.0
    for scores in rows:
        for stem in stems:
            if stem in scores.get("filters", {}):
                base = scores["filters"][stem]["sdr_mdx"]
                model += scores["model"][stem]["sdr_mdx"] - base
                ceiling += scores["ceiling"][stem]["sdr_mdx"] - base
    return model / ceiling if ceiling > 0 else float("nan")
