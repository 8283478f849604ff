"""Feature version fe-3: a snapshot's streams put back on a time axis, and per-stem levels over
time as the target. The full definition, for anyone who must reproduce it (the Studio kit
does), is in training/MODEL_CARD.md; this docstring is the short form.

Time steps are STEP_SECONDS long, from the start of the track, at most MAX_STEPS of them (a
longer track is described up to the cap); `step_valid` marks the steps inside the track.

Input `stem_features` [MAX_STEPS, FEATURE_DIM] float32. Studio flattens each stream's frames
(32 "bands", or a tuple such as rms, zcr, pitch lag) and keeps every ceil(n/1000)-th value. From
the track's duration and sample rate, `n` and that stride are known, so every kept value's
frame, component and time are known (training/studio_snapshot.py has each stream's layout). Each step
column is the mean, over the values whose time falls in that step, of one transformed
component (STEP_COLUMNS), with a presence flag where a component had no value in the step:
  spectral   log10 of the step's mean power: sum of values / sum of their bands' Hann weights
             (a band is a 64-sample stretch of the frame, weighted by the window)
  temporal   log10 rms; zero crossings and the autocorrelation's pitch as frequencies (octaves
             above 27.5 Hz / 10), the share of unpitched frames and of pitches in each of
             PITCH_BANDS_HZ (sub, bass, voice and chords, above)
  harmonic   share of peak slots that found a peak (Studio's "peaks" are loud samples)
  percussive log10 energy, log10 delta, transient flag, log10 peak
  stereo     correlation, pan, phase difference (no values for mono)
the step against the track's mean of each column (`_vs_track`), the spread within the step
of a few (`_spread`), the step's position (start / 300 s) and `step_valid`; then the track's context, the same at
every step (CONTEXT_COLUMNS): key, mode, BPM, transient density, tension, energy, duration,
stereo, confidence.

Target: for each stem and step, the stem's level relative to the mix in dB,
10 log10(P_stem / P_mix), clipped to [LEVEL_FLOOR_DB, LEVEL_CEILING_DB]; P is the mean square of
the ground-truth values whose time falls in the step, and the mix is the sum of the stems given
(the same decimated samples, so their aliasing largely cancels in the ratio). A stem is present
in a step when its level is above PRESENT_DB. A cell counts (weight 1) when its stem is in the
ground truth and the mix is not silent in that step; a stem absent from the ground truth is
unknown (weight 0), while a stem given as silence is a target of LEVEL_FLOOR_DB.
"""

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from training.contract import KEYS, MAX_STEM_VALUES, MAX_STREAM_VALUES, MODES, STEMS, STREAMS
from training.studio_snapshot import BAND_WEIGHTS, STREAM_LAYOUT, kept_indices

FEATURE_VERSION = "fe-3"
STEP_SECONDS = 2.0
MAX_STEPS = 150  # 5 minutes
LEVEL_FLOOR_DB = -40.0
LEVEL_CEILING_DB = 6.0
PRESENT_DB = -30.0
SILENT_MIX_POWER = 1e-8  # a mix quieter than -80 dBFS in a step has nothing to separate
_EPS = 1e-5


def _log10(values: np.ndarray) -> np.ndarray:
    return np.log10(np.abs(values) + _EPS)


def _octaves(hz: np.ndarray) -> np.ndarray:
    """Octaves above 27.5 Hz, over 10: a frequency on a 0..1 scale."""
    return np.log2(np.maximum(hz, 27.5) / 27.5) / 10


def _pitch_band(low: float, high: float):
    """1 where the autocorrelation's pitch (sample rate / lag) falls in [low, high) Hz."""

    def share(lag: np.ndarray, rate: float) -> np.ndarray:
        hz = np.where(lag > 0, rate / np.maximum(lag, 1), 0.0)
        return ((hz >= low) & (hz < high)).astype(np.float64)

    return share


# (column, stream, components it reads, transform of (values, sample rate)). Each column also
# gets a presence flag "<column>_present". Frequencies are in Hz (a zero-crossing rate times
# half the sample rate, a pitch lag as sample rate / lag), so one song at two sample rates
# encodes alike.
PITCH_BANDS_HZ = ((1.0, 80.0), (80.0, 250.0), (250.0, 1000.0), (1000.0, 1e9))
_GROUPS: tuple[tuple[str, str, tuple[int, ...], object], ...] = (
    ("spectral_log_power", "spectral", tuple(range(32)), None),  # ratio of sums, below
    ("temporal_log_rms", "temporal", (0,), lambda v, rate: _log10(v)),
    ("temporal_zero_crossing_hz", "temporal", (1,), lambda v, rate: _octaves(v * rate / 2)),
    ("temporal_pitch_hz", "temporal", (2,), lambda v, rate: _octaves(np.where(v > 0, rate / np.maximum(v, 1), 0.0))),
    ("temporal_unpitched", "temporal", (2,), lambda v, rate: (v <= 0).astype(np.float64)),
    *((f"temporal_pitch_{int(low)}_hz", "temporal", (2,), _pitch_band(low, high)) for low, high in PITCH_BANDS_HZ),
    ("harmonic_peak_share", "harmonic", tuple(range(1, 16, 2)), lambda v, rate: (v > 0).astype(np.float64)),
    ("percussive_log_energy", "percussive", (0,), lambda v, rate: _log10(v)),
    ("percussive_log_delta", "percussive", (1,), lambda v, rate: _log10(v)),
    ("percussive_transient", "percussive", (2,), lambda v, rate: v),
    ("percussive_log_peak", "percussive", (3,), lambda v, rate: _log10(v)),
    ("stereo_correlation", "stereo", (0,), lambda v, rate: v),
    ("stereo_pan", "stereo", (1,), lambda v, rate: v),
    ("stereo_phase", "stereo", (2,), lambda v, rate: v),
)
_SPREAD_GROUPS = ("spectral_log_power", "temporal_zero_crossing_hz", "percussive_log_energy", "stereo_pan")
STEP_COLUMNS = (
    *(name for name, *_ in _GROUPS),
    *(f"{name}_present" for name, *_ in _GROUPS),
    *(f"{name}_vs_track" for name, *_ in _GROUPS),
    *(f"{name}_spread" for name in _SPREAD_GROUPS),
    "position",
    "step_valid",
)
CONTEXT_COLUMNS = (
    *(f"key_{key}" for key in KEYS),
    "mode_major",
    "mode_minor",
    "mode_missing",
    "bpm",
    "bpm_missing",
    "transient_density",
    "tension",
    "energy_mean",
    "energy_variance",
    "energy_max",
    "energy_min",
    "energy_missing",
    "duration",
    "stereo",
    "confidence",
)
COLUMNS = STEP_COLUMNS + CONTEXT_COLUMNS
FEATURE_DIM = len(COLUMNS)
VALID_COLUMN = STEP_COLUMNS.index("step_valid")


@dataclass(frozen=True)
class Correction:
    """A user's correction of one stem (docs/contract.md): which way its level should go where."""

    stem: str
    kind: str  # boost, cut, isolation, masking
    time_start_s: float | None
    time_end_s: float | None
    strength: float


@dataclass(frozen=True)
class SnapshotArrays:
    """What feature engineering needs of one snapshot (as stored, or as Studio sends it)."""

    streams: Mapping[str, np.ndarray]  # the five STREAMS, float32 with NaN for null
    energy: np.ndarray  # 0 or 4 values
    key: str
    mode: str | None
    bpm: float | None
    transient_density: float
    tension: float
    duration_s: float
    sample_rate: float
    channels: int
    confidence: float
    ground_truth: Mapping[str, np.ndarray | None]  # per stem; None when absent
    corrections: Sequence[Correction] = field(default_factory=tuple)


@dataclass(frozen=True)
class Split:
    """Model inputs [n, steps, dim], level targets [n, stems, steps] in dB, the weight of each
    target cell [n, stems, steps] (0 = unknown), and the bounds users' corrections put on levels
    [n, stems, steps, 2] (lower, upper dB; NO_BOUND where there is none)."""

    features: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    bounds: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.bounds is None:
            object.__setattr__(self, "bounds", unbounded(len(self.features)))

    def __len__(self) -> int:
        return len(self.features)

    @property
    def bounded(self) -> np.ndarray:
        """[n, stems, steps]: where a correction bounds the level."""
        return (self.bounds[..., 0] > NO_BOUND[0]) | (self.bounds[..., 1] < NO_BOUND[1])

    @property
    def corrections_only(self) -> np.ndarray:
        """[n]: snapshots whose only label is users' corrections (no cell the ground truth knows)."""
        return ~(self.weights > 0).any(axis=(1, 2)) & self.bounded.any(axis=(1, 2))

    def rows(self, start: int, stop: int | None = None) -> "Split":
        """Snapshots start to stop (the first `start` when stop is None)."""
        part = slice(0, start) if stop is None else slice(start, stop)
        return Split(self.features[part], self.targets[part], self.weights[part], self.bounds[part])

    @classmethod
    def concat(cls, *splits: "Split") -> "Split":
        columns = zip(*((s.features, s.targets, s.weights, s.bounds) for s in splits), strict=True)
        return cls(*(np.concatenate(column) for column in columns))

    @classmethod
    def empty(cls) -> "Split":
        return cls(
            np.zeros((0, MAX_STEPS, FEATURE_DIM), np.float32),
            np.zeros((0, len(STEMS), MAX_STEPS), np.float32),
            np.zeros((0, len(STEMS), MAX_STEPS), np.float32),
        )


# --- users' corrections ------------------------------------------------------------------------
# A correction says which way a stem's level should go over a time range (the whole track when
# it gives none): a bound on the level there, in the same dB as the target. A boost means the
# stem is clearly there, the stronger the louder; a cut that it is quieter than it was played;
# isolation that it is what that stretch is about; masking that it should not be heard. The
# frequency range has no counterpart in a per-stem level and is not used.
NO_BOUND = (LEVEL_FLOOR_DB - 100.0, LEVEL_CEILING_DB + 100.0)


def correction_bound(kind: str, strength: float) -> tuple[float, float]:
    """(lower, upper) level in dB that a correction of this kind and strength (0..1) asks for."""
    strength = float(np.clip(strength, 0.0, 1.0))
    return {
        "boost": (-20.0 + 14.0 * strength, NO_BOUND[1]),  # at least -20 dB, -6 dB at full strength
        "cut": (NO_BOUND[0], -6.0 - 24.0 * strength),  # at most -6 dB, -30 dB at full strength
        "isolation": (-3.0, NO_BOUND[1]),
        "masking": (NO_BOUND[0], PRESENT_DB - 5.0),
    }[kind]


def unbounded(count: int) -> np.ndarray:
    bounds = np.empty((count, len(STEMS), MAX_STEPS, 2), np.float32)
    bounds[..., 0], bounds[..., 1] = NO_BOUND
    return bounds


# A correction bounds a step's level by the part of the step it covers: a lower bound (the stem
# is there) where it covers at least half, loosened by the share it covers (were the mix's power
# even over the step, the stem's power over the step is at least that share of its power over
# the part heard); an upper bound (the stem is quiet) only where it covers three quarters, as
# the rest of the step may hold anything. Rounding ranges out to whole steps bounded what the
# user never heard (docs/decisions/corrections-as-bounds.md).
LOWER_BOUND_COVER = 0.5
UPPER_BOUND_COVER = 0.75


def encode_bounds(snapshot: "SnapshotArrays") -> np.ndarray:
    """[stems, MAX_STEPS, 2] bounds from a snapshot's corrections (NO_BOUND elsewhere); where two
    corrections meet, the tighter bound holds."""
    bounds = unbounded(1)[0]
    steps = valid_steps(snapshot.duration_s)
    step_starts = np.arange(steps) * STEP_SECONDS
    step_ends = np.minimum(step_starts + STEP_SECONDS, snapshot.duration_s)
    for correction in snapshot.corrections:
        if correction.stem not in STEMS or correction.kind not in ("boost", "cut", "isolation", "masking"):
            continue
        start = 0.0 if correction.time_start_s is None else max(0.0, correction.time_start_s)
        end = snapshot.duration_s if correction.time_end_s is None else min(snapshot.duration_s, correction.time_end_s)
        overlap = np.clip(np.minimum(end, step_ends) - np.maximum(start, step_starts), 0.0, None)
        covered = overlap / np.maximum(step_ends - step_starts, 1e-9)
        lower, upper = correction_bound(correction.kind, correction.strength)
        row = bounds[STEMS.index(correction.stem), :steps]
        if lower > NO_BOUND[0]:
            at = covered >= LOWER_BOUND_COVER
            row[at, 0] = np.maximum(row[at, 0], lower + 10 * np.log10(covered[at]))
        if upper < NO_BOUND[1]:
            at = covered >= UPPER_BOUND_COVER
            row[at, 1] = np.minimum(row[at, 1], upper)
    return bounds


def slog(values: np.ndarray) -> np.ndarray:
    """Symmetric log: tames values that span orders of magnitude."""
    return np.sign(values) * np.log1p(np.abs(values))


def track_samples(duration_s: float, sample_rate: float) -> int:
    return int(round(duration_s * sample_rate))


def value_times(stream: str, count: int, duration_s: float, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(time in s, component) of each of the `count` values Studio sent for a stream."""
    layout = STREAM_LAYOUT[stream]
    total = layout.frames(track_samples(duration_s, sample_rate)) * layout.per_frame
    kept = kept_indices(total, MAX_STREAM_VALUES)
    if len(kept) != count:
        # Not the count Studio's stride gives for this duration: spread the values evenly.
        kept = np.floor(np.arange(count) * (total / max(count, 1))).astype(np.int64)
    frame, component = kept // layout.per_frame, kept % layout.per_frame
    return layout.centre_s(frame, component, sample_rate), component


def step_of(times: np.ndarray) -> np.ndarray:
    return np.floor(times / STEP_SECONDS).astype(np.int64)


def valid_steps(duration_s: float) -> int:
    return min(MAX_STEPS, max(1, math.ceil(duration_s / STEP_SECONDS)))


def _step_means(steps: np.ndarray, values: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    keep = (steps >= 0) & (steps < MAX_STEPS) & np.isfinite(values)
    steps, values = steps[keep], values[keep]
    weights = np.ones(len(steps)) if weights is None else weights[keep]
    total = np.bincount(steps, weights=values * weights, minlength=MAX_STEPS)
    count = np.bincount(steps, weights=weights, minlength=MAX_STEPS)
    present = count > 0
    return np.where(present, total / np.where(present, count, 1), 0.0), present


def encode_features(snapshot: SnapshotArrays) -> np.ndarray:
    """The model input for one snapshot: [MAX_STEPS, FEATURE_DIM] float32."""
    out = np.zeros((MAX_STEPS, FEATURE_DIM), dtype=np.float64)
    groups = len(_GROUPS)
    located = {}
    for stream in STREAMS:
        values = np.asarray(snapshot.streams[stream], dtype=np.float64)
        if stream == "stereo" and snapshot.channels < 2:
            values = values[:0]  # Studio's mono placeholder [0, 0, 0] describes no time
        times, component = value_times(stream, len(values), snapshot.duration_s, snapshot.sample_rate)
        located[stream] = (values, step_of(times), component)
    spread_column = 3 * groups
    for column, (name, stream, components, transform) in enumerate(_GROUPS):
        values, steps, component = located[stream]
        chosen = np.isin(component, components)
        if transform is None:  # spectral: power = sum of values / sum of their Hann weights
            total, present = _step_means(steps[chosen], values[chosen])
            weight, _ = _step_means(steps[chosen], BAND_WEIGHTS[component[chosen]])
            mean = np.where(present, _log10(total / np.where(weight > 0, weight, 1)), 0.0)
            # each value's own power, from the bands the window does not all but silence
            central = chosen & (BAND_WEIGHTS[np.minimum(component, len(BAND_WEIGHTS) - 1)] > 0.1)
            transformed = _log10(values[central] / BAND_WEIGHTS[component[central]])
            spread_steps = steps[central]
        else:
            transformed = transform(values[chosen], float(snapshot.sample_rate))
            mean, present = _step_means(steps[chosen], transformed)
            spread_steps = steps[chosen]
        out[:, column], out[:, groups + column] = mean, present
        if present.any():  # the step against the track's own typical value
            out[:, 2 * groups + column] = np.where(present, mean - mean[present].mean(), 0.0)
        if name in _SPREAD_GROUPS:
            first, _ = _step_means(spread_steps, transformed)
            second, _ = _step_means(spread_steps, transformed**2)
            out[:, spread_column] = np.sqrt(np.maximum(second - first**2, 0.0))
            spread_column += 1
    steps = valid_steps(snapshot.duration_s)
    out[:, spread_column] = np.arange(MAX_STEPS) * STEP_SECONDS / 300.0
    out[:steps, VALID_COLUMN] = 1.0
    out[:, len(STEP_COLUMNS) :] = encode_context(snapshot)
    return out.astype(np.float32)


def encode_context(snapshot: SnapshotArrays) -> np.ndarray:
    context = np.zeros(len(CONTEXT_COLUMNS))
    context[KEYS.index(snapshot.key)] = 1.0
    context[12 + (MODES.index(snapshot.mode) if snapshot.mode in MODES else 2)] = 1.0
    if snapshot.bpm is None:
        context[16] = 1.0
    else:
        context[15] = np.clip((snapshot.bpm - 60.0) / 120.0, 0.0, 1.0)
    context[17] = np.log1p(snapshot.transient_density)
    context[18] = snapshot.tension
    energy = np.asarray(snapshot.energy, dtype=np.float64)
    if len(energy) == 4 and np.isfinite(energy).all():
        context[19:23] = slog(energy)
    else:
        context[23] = 1.0
    context[24] = np.log1p(snapshot.duration_s)
    context[25] = 1.0 if snapshot.channels >= 2 else 0.0
    context[26] = snapshot.confidence
    return context


def step_powers(values: np.ndarray, duration_s: float, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean square per step of ground-truth values [k, count] (Studio's decimated channel 0), and
    how many values each step had."""
    count = values.shape[-1]
    kept = kept_indices(track_samples(duration_s, sample_rate), MAX_STEM_VALUES)
    if len(kept) != count:
        kept = np.floor(np.arange(count) * (track_samples(duration_s, sample_rate) / max(count, 1)))
    steps = step_of(kept / sample_rate)
    inside = steps < MAX_STEPS
    squares = np.where(np.isfinite(values), values, 0.0)[..., inside] ** 2
    counts = np.bincount(steps[inside], minlength=MAX_STEPS)
    totals = np.stack([np.bincount(steps[inside], weights=row, minlength=MAX_STEPS) for row in squares])
    return totals / np.maximum(counts, 1), counts


def level_db(stem_power: np.ndarray, mix_power: np.ndarray) -> np.ndarray:
    ratio = 10 * np.log10((stem_power + 1e-12) / (mix_power + 1e-12))
    return np.clip(ratio, LEVEL_FLOOR_DB, LEVEL_CEILING_DB)


def encode_targets(snapshot: SnapshotArrays) -> tuple[np.ndarray, np.ndarray]:
    """Levels [6, MAX_STEPS] in dB and their weights [6, MAX_STEPS] (0 = unknown)."""
    targets = np.full((len(STEMS), MAX_STEPS), LEVEL_FLOOR_DB, dtype=np.float32)
    weights = np.zeros((len(STEMS), MAX_STEPS), dtype=np.float32)
    given = [
        i
        for i, stem in enumerate(STEMS)
        if (v := snapshot.ground_truth.get(stem)) is not None and len(v) > 0 and np.isfinite(v).any()
    ]
    if not given:
        return targets, weights
    length = min(len(snapshot.ground_truth[STEMS[i]]) for i in given)
    stems = np.stack([np.asarray(snapshot.ground_truth[STEMS[i]][:length], dtype=np.float64) for i in given])
    mix = np.where(np.isfinite(stems), stems, 0.0).sum(axis=0, keepdims=True)
    powers, counts = step_powers(np.concatenate([stems, mix]), snapshot.duration_s, snapshot.sample_rate)
    stem_power, mix_power = powers[:-1], powers[-1]
    known = (counts > 0) & (mix_power > SILENT_MIX_POWER)
    targets[given] = level_db(stem_power, mix_power)
    weights[given] = known.astype(np.float32)
    return targets, weights


def from_wire(snapshot: Mapping) -> SnapshotArrays:
    """SnapshotArrays from a snapshot as Studio sends it (camelCase JSON, nulls for NaN)."""

    def array(values: Sequence | None) -> np.ndarray:
        return np.asarray([np.nan if v is None else v for v in (values or [])], dtype=np.float64).astype(np.float32)

    features = snapshot["quantumFeatures"]
    context = snapshot["musicalContext"]
    audio = snapshot["originalAudio"]
    truth = snapshot.get("groundTruthStems") or {}
    transients = context.get("transients") or []
    corrections = tuple(
        Correction(c["correctedStem"], c["correctionType"], *(c.get("timeRange") or (None, None)), c["strength"])
        for c in snapshot.get("userCorrections") or []
    )
    return SnapshotArrays(
        streams={stream: array(features[stream]) for stream in STREAMS},
        energy=array(features["energy"]),
        key=context["key"],
        mode=context.get("mode"),
        bpm=context.get("bpm"),
        transient_density=len(transients) / audio["duration"],
        tension=context["harmonicContent"]["tensionLevel"],
        duration_s=audio["duration"],
        sample_rate=audio["sampleRate"],
        channels=audio["channels"],
        confidence=snapshot["metadata"]["confidence"],
        ground_truth={stem: (array(truth[stem]) if truth.get(stem) is not None else None) for stem in STEMS},
        corrections=corrections,
    )


SPLITS = ("train", "validation", "test")


def encode_split(snapshots: Iterable[Mapping]) -> Split:
    """Snapshots as Studio sends them -> one Split, in their order."""
    rows = []
    for snapshot in snapshots:
        arrays = from_wire(snapshot)
        rows.append((encode_features(arrays), *encode_targets(arrays), encode_bounds(arrays)))
    return Split(*(np.stack(column) for column in zip(*rows, strict=True))) if rows else Split.empty()


def build_splits(snapshots: Iterable[Mapping]) -> dict[str, Split]:
    """Snapshots as Studio sends them -> train / validation / test Splits, split by id as
    datasets are (in memory: for tests and benchmarks; the service writes shards)."""
    grouped: dict[str, list] = {split: [] for split in SPLITS}
    for snapshot in snapshots:
        grouped[split_of(snapshot["id"])].append(snapshot)
    return {split: encode_split(grouped[split]) for split in SPLITS}


def split_of(snapshot_id: str, validation_share: float = 0.15, test_share: float = 0.15) -> str:
    """'train', 'validation' (model selection) or 'test' (the report and the gate), from the
    id alone: a snapshot never changes split as data grows."""
    bucket = int.from_bytes(hashlib.sha256(snapshot_id.encode()).digest()[:8], "big") / 2**64
    if bucket < test_share:
        return "test"
    return "validation" if bucket < test_share + validation_share else "train"


def model_input(snapshot: Mapping) -> dict:
    """A snapshot as Studio sends it, as the model's input in JSON: {"featureVersion", "shape",
    "columns", "data"} (data flattened, row-major). What `fabric encode` prints, for comparing
    with what the Studio kit feeds the model."""
    encoded = encode_features(from_wire(snapshot))
    return {
        "featureVersion": FEATURE_VERSION,
        "shape": list(encoded.shape),
        "columns": list(COLUMNS),
        "data": [float(v) for v in encoded.ravel()],
    }
