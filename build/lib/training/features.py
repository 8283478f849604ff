"""Feature engineering: Studio's variable-length snapshot streams -> fixed-shape float32 tensors.

The encoding (FEATURE_VERSION "fe-1"), which Studio must reproduce to feed the model:

Input `stem_features`, shape [SEQUENCE_LENGTH=32, FEATURE_DIM=48], float32. Step t of 32 covers
the t-th equal slice of each stream's values. Studio flattens tuples (temporal is rms, zcr,
pitch lag, ...) and downsamples by index, so a slice mixes tuple components of very different
sizes; quantiles keep them apart where a mean would be swamped by the largest.
  0-14   for each stream in (spectral, temporal, harmonic, percussive, stereo): the 10th, 50th
         and 90th percentiles of slog(v) over the slice, slog(v) = sign(v) * log1p(|v|). Each
         stream is first resampled to 32 x 16 values by nearest index; NaN (Studio's null)
         values are skipped; 0 where a slice has no finite value.
  15-19  for each of those streams: 1 if the slice had any finite value, else 0.
  20     t / (SEQUENCE_LENGTH - 1): position in the track.
  21-32  key, one-hot (C, C#, ..., B).
  33-35  mode, one-hot (major, minor, not given).
  36     BPM normalised over 60..180: clip((bpm - 60) / 120, 0, 1); 0 when BPM is null.
  37     1 when BPM is null.
  38     log1p(transient density, per second).
  39     tension level (0..1).
  40-43  slog of energy [mean, variance, max, min]; 0 when energy is empty.
  44     1 when energy is empty.
  45     log1p(duration in seconds).
  46     1 for stereo audio (channels >= 2), else 0.
  47     Studio's classification confidence (0..1).
Columns 21-47 are the same at every step (the track's context, broadcast).

Target: for each stem (vocals, drums, bass, harmonic, perc, sub), the RMS envelope of its
ground-truth values over the same 32 slices: shape [6, 32]. Studio's ground truth is the stem's
channel-0 samples decimated to <= 500 values, so individual values are aliased samples that no
model can predict from these inputs; their local RMS is the stem's loudness over time, which
the mixture's features do carry. A stem absent from a snapshot's ground truth has mask 0 and is
left out of the loss (not trained towards zeros).
"""

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

FEATURE_VERSION = "fe-1"
SEQUENCE_LENGTH = 32
STREAMS = ("spectral", "temporal", "harmonic", "percussive", "stereo")
STEMS = ("vocals", "drums", "bass", "harmonic", "perc", "sub")
KEYS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODES = ("major", "minor")
FEATURE_DIM = 48
VALUES_PER_STEP = 16
QUANTILES = (10, 50, 90)
CONTEXT_START = 5 * len(QUANTILES) + 5 + 1


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
    channels: int
    confidence: float
    ground_truth: Mapping[str, np.ndarray | None]  # per stem; None when absent


@dataclass(frozen=True)
class Split:
    """Model inputs [n, steps, dim], targets [n, stems, steps] and stem masks [n, stems]."""

    features: np.ndarray
    targets: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.features)


def slog(values: np.ndarray) -> np.ndarray:
    """Symmetric log: tames streams whose values span bins (hundreds) and powers (0..1)."""
    return np.sign(values) * np.log1p(np.abs(values))


@functools.lru_cache(maxsize=4096)
def slice_bounds(length: int, steps: int = SEQUENCE_LENGTH) -> np.ndarray:
    """Start/end index of each of `steps` equal slices of `length` values (empty slices when
    there are fewer values than steps)."""
    return np.floor(np.linspace(0, length, steps + 1)).astype(np.int64)


@functools.lru_cache(maxsize=4096)
def _resampling_grid(length: int, steps: int) -> np.ndarray:
    points = steps * VALUES_PER_STEP
    return np.floor(np.arange(points) * length / points).astype(np.int64)


def sliced_quantiles(values: np.ndarray, steps: int = SEQUENCE_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """Per slice: the QUANTILES (nearest rank) of the finite values [steps, 3], and whether
    there were any."""
    quantiles, present = _stream_quantiles([values], steps)
    return quantiles[0], present[0]


def _stream_quantiles(streams: Sequence[np.ndarray], steps: int = SEQUENCE_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """sliced_quantiles for several streams at once: [streams, steps, 3] and [streams, steps]."""
    # Nearest-index resampling to a fixed grid, then one sort for every stream and slice.
    table = np.full((len(streams), steps, VALUES_PER_STEP), np.nan)
    for index, values in enumerate(streams):
        if len(values):
            table[index] = values[_resampling_grid(len(values), steps)].reshape(steps, VALUES_PER_STEP)
    table.sort(axis=2)  # NaN sorts last
    finite = np.isfinite(table).sum(axis=2)
    ranks = np.floor(np.maximum(finite - 1, 0)[..., None] * (np.array(QUANTILES) / 100)).astype(np.int64)
    quantiles = np.take_along_axis(table, ranks, axis=2)
    present = finite > 0
    return np.where(present[..., None], quantiles, 0.0), present


def envelope(values: np.ndarray, steps: int = SEQUENCE_LENGTH) -> np.ndarray:
    """RMS of the finite values in each slice: a stem's loudness over the track. Takes one
    array [n] or several of the same length [k, n]."""
    finite = np.isfinite(values)
    squares = np.where(finite, values, 0.0).astype(np.float64) ** 2
    bounds = slice_bounds(values.shape[-1], steps)
    zero = np.zeros((*values.shape[:-1], 1))
    count = np.diff(np.concatenate([zero, np.cumsum(finite, axis=-1)], axis=-1)[..., bounds], axis=-1)
    total = np.diff(np.concatenate([zero, np.cumsum(squares, axis=-1)], axis=-1)[..., bounds], axis=-1)
    return np.sqrt(total / np.maximum(count, 1))


def encode_features(snapshot: SnapshotArrays) -> np.ndarray:
    """The model input for one snapshot: [SEQUENCE_LENGTH, FEATURE_DIM] float32."""
    out = np.zeros((SEQUENCE_LENGTH, FEATURE_DIM), dtype=np.float32)
    q = len(QUANTILES)
    quantiles, present = _stream_quantiles([slog(np.asarray(snapshot.streams[s], dtype=np.float64)) for s in STREAMS])
    out[:, : q * len(STREAMS)] = quantiles.transpose(1, 0, 2).reshape(SEQUENCE_LENGTH, -1)
    out[:, q * len(STREAMS) : q * len(STREAMS) + len(STREAMS)] = present.T
    out[:, CONTEXT_START - 1] = np.arange(SEQUENCE_LENGTH) / (SEQUENCE_LENGTH - 1)
    context = np.zeros(FEATURE_DIM - CONTEXT_START, dtype=np.float32)
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
    out[:, CONTEXT_START:] = context
    return out


def encode_targets(ground_truth: Mapping[str, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """Stem envelopes [6, SEQUENCE_LENGTH] and the stem mask [6] (1 = present)."""
    targets = np.zeros((len(STEMS), SEQUENCE_LENGTH), dtype=np.float32)
    mask = np.zeros(len(STEMS), dtype=np.float32)
    by_length: dict[int, list[int]] = {}  # stems of one length go through envelope() together
    for index, stem in enumerate(STEMS):
        values = ground_truth.get(stem)
        if values is not None and len(values) > 0 and np.isfinite(values).any():
            by_length.setdefault(len(values), []).append(index)
    for indices in by_length.values():
        stacked = np.stack([np.asarray(ground_truth[STEMS[i]], dtype=np.float64) for i in indices])
        targets[indices] = envelope(stacked)
        mask[indices] = 1.0
    return targets, mask


def from_wire(snapshot: Mapping) -> SnapshotArrays:
    """SnapshotArrays from a snapshot as Studio sends it (camelCase JSON, nulls for NaN)."""

    def array(values: Sequence | None) -> np.ndarray:
        return np.asarray(values if values is not None else [], dtype=np.float64).astype(np.float32)

    features = snapshot["quantumFeatures"]
    context = snapshot["musicalContext"]
    audio = snapshot["originalAudio"]
    truth = snapshot.get("groundTruthStems") or {}
    transients = context.get("transients") or []
    return SnapshotArrays(
        streams={stream: array(features[stream]) for stream in STREAMS},
        energy=array(features["energy"]),
        key=context["key"],
        mode=context.get("mode"),
        bpm=context.get("bpm"),
        transient_density=len(transients) / audio["duration"],
        tension=context["harmonicContent"]["tensionLevel"],
        duration_s=audio["duration"],
        channels=audio["channels"],
        confidence=snapshot["metadata"]["confidence"],
        ground_truth={stem: (array(truth[stem]) if truth.get(stem) is not None else None) for stem in STEMS},
    )
