"""What Studio computes from audio, in NumPy: its snapshot streams, its ground truth and its
static filter stems.

The streams follow Studio's `quantumStemEngine.ts` and `stemSeparationSnapshot.ts` step by
step (docs/contract.md): per frame values in float64 from float32 samples, stored as float32, then
every ceil(n/1000)-th value kept. Only the kept values are computed, so a 3-minute song costs
about 1,000 frames per stream, not 50,000. Note what Studio's "spectral" stream really is: its
`computePowerSpectrum` squares the Hann-windowed samples (no FFT), so each of the 32 "bands" is
the windowed energy of one 64-sample stretch of the 2,048-sample frame: a time position with a
known window weight, not a frequency (features.py uses both).

The layout of every stream (frame size, hop, values per frame) lives in STREAM_LAYOUT, which
the feature encoder uses to put each kept value back at its time and component.
"""

import math
from dataclasses import dataclass

import numpy as np

from training.contract import KEYS, MAX_STEM_VALUES, MAX_STREAM_VALUES, STEMS


@dataclass(frozen=True)
class StreamLayout:
    window: int  # samples per frame
    hop: int
    first: int  # sample where the first frame starts
    per_frame: int  # values per frame, interleaved
    margin: int  # frames start while start < length - margin
    component_samples: int = 0  # when a frame's components are consecutive stretches of it (spectral's bands)

    def frames(self, length: int) -> int:
        end = length - self.margin
        return max(0, math.ceil((end - self.first) / self.hop)) if end > self.first else 0

    def centre_s(self, frame: np.ndarray, component: np.ndarray, sample_rate: float) -> np.ndarray:
        """Time (s) that each (frame, component) value describes."""
        start = self.first + frame * self.hop
        if self.component_samples:
            return (start + (component + 0.5) * self.component_samples) / sample_rate
        return (start + self.window / 2) / sample_rate


N_FFT = 2048
BANDS = 32
BAND_SAMPLES = N_FFT // BANDS
SPECTRAL = StreamLayout(window=N_FFT, hop=512, first=0, per_frame=BANDS, margin=N_FFT, component_samples=BAND_SAMPLES)
STREAM_LAYOUT = {
    "spectral": SPECTRAL,
    "temporal": StreamLayout(window=1024, hop=1024, first=0, per_frame=3, margin=1024),  # rms, zcr, pitch lag
    "harmonic": StreamLayout(window=N_FFT, hop=N_FFT, first=0, per_frame=16, margin=N_FFT),  # 8 (bin, power)
    "percussive": StreamLayout(window=512, hop=512, first=512, per_frame=4, margin=512),  # energy, delta, transient, peak
    "stereo": StreamLayout(window=1024, hop=1024, first=0, per_frame=3, margin=1024),  # correlation, pan, phase
}
ENERGY_WINDOW = 2048


def hann(length: int) -> np.ndarray:
    return 0.5 * (1 - np.cos(2 * np.pi * np.arange(length) / (length - 1)))


# Mean squared Hann weight of each band: a band's value over this is the stretch's mean power.
BAND_WEIGHTS = (hann(N_FFT) ** 2).reshape(BANDS, BAND_SAMPLES).mean(axis=1)


def kept_indices(length: int, cap: int) -> np.ndarray:
    """The indices Studio keeps of `length` values: all, or every ceil(length/cap)-th."""
    step = 1 if length <= cap else math.ceil(length / cap)
    return np.arange(0, length, step)


def _rms(frames: np.ndarray) -> np.ndarray:
    return np.sqrt((frames.astype(np.float64) ** 2).mean(axis=-1))


def _frames(x: np.ndarray, layout: StreamLayout, frame: np.ndarray) -> np.ndarray:
    starts = layout.first + frame * layout.hop
    return x[starts[:, None] + np.arange(layout.window)]


def _windowed_power(frames: np.ndarray) -> np.ndarray:
    # Studio stores the windowed samples and their squares in Float32Arrays.
    windowed = (frames.astype(np.float64) * hann(frames.shape[1])).astype(np.float32)
    return (windowed.astype(np.float64) ** 2).astype(np.float32)


def _spectral(x: np.ndarray, frame: np.ndarray, component: np.ndarray) -> np.ndarray:
    power = _windowed_power(_frames(x, SPECTRAL, frame))
    bands = power.reshape(len(frame), BANDS, BAND_SAMPLES).astype(np.float64).sum(axis=2) / BAND_SAMPLES
    return bands[np.arange(len(frame)), component]


def _temporal(x: np.ndarray, frame: np.ndarray, component: np.ndarray) -> np.ndarray:
    frames = _frames(x, STREAM_LAYOUT["temporal"], frame).astype(np.float64)
    out = np.zeros(len(frame))
    rows = component == 0
    out[rows] = _rms(frames[rows])
    rows = component == 1
    negative = frames[rows] < 0
    out[rows] = (negative[:, 1:] != negative[:, :-1]).sum(axis=1) / frames.shape[1]
    rows = component == 2
    if rows.any():
        size = frames.shape[1]
        spectrum = np.fft.rfft(frames[rows], 2 * size)
        autocorr = np.fft.irfft(np.abs(spectrum) ** 2, 2 * size)[:, :size] / (size - np.arange(size))
        candidates = autocorr[:, 10:500].astype(np.float32)  # Studio keeps them in a Float32Array
        best = candidates.argmax(axis=1)
        out[rows] = np.where(candidates.max(axis=1) > 0, best + 10, 0)
    return out


def _harmonic(x: np.ndarray, frame: np.ndarray, component: np.ndarray) -> np.ndarray:
    power = _windowed_power(_frames(x, STREAM_LAYOUT["harmonic"], frame))
    middle = power[:, 1:-1]
    peak = (middle > power[:, :-2]) & (middle > power[:, 2:]) & (middle > 0.1)
    out = np.zeros(len(frame))
    for row in range(len(frame)):
        slot = component[row] // 2
        found = np.flatnonzero(peak[row])
        if slot < len(found):
            bin_index = found[slot] + 1
            out[row] = bin_index if component[row] % 2 == 0 else power[row, bin_index]
    return out


def _percussive(x: np.ndarray, frame: np.ndarray, component: np.ndarray) -> np.ndarray:
    layout = STREAM_LAYOUT["percussive"]
    # The delta needs the previous frame's energy, kept or not: every frame's energy (cheap).
    count = layout.frames(len(x))
    energy = _rms(x[layout.first : layout.first + count * layout.hop].reshape(count, layout.hop))
    delta = np.abs(energy - np.concatenate([[0.0], energy[:-1]]))
    peak = np.abs(_frames(x, layout, frame)).max(axis=1).astype(np.float64)
    table = np.stack([energy[frame], delta[frame], (delta[frame] > 0.1).astype(np.float64), peak], axis=1)
    return table[np.arange(len(frame)), component]


def _stereo(left: np.ndarray, right: np.ndarray, frame: np.ndarray, component: np.ndarray) -> np.ndarray:
    layout = STREAM_LAYOUT["stereo"]
    lf, rf = _frames(left, layout, frame).astype(np.float64), _frames(right, layout, frame).astype(np.float64)
    denominator = np.sqrt((lf * lf).sum(axis=1) * (rf * rf).sum(axis=1))
    correlation = np.where(denominator > 0, (lf * rf).sum(axis=1) / np.where(denominator > 0, denominator, 1), 0.0)
    left_rms, right_rms = _rms(lf), _rms(rf)
    pan = (right_rms - left_rms) / (left_rms + right_rms + 0.0001)
    phase = np.arctan2(rf, lf).mean(axis=1)
    return np.stack([correlation, pan, phase], axis=1)[np.arange(len(frame)), component]


def studio_streams(audio: np.ndarray) -> dict[str, list[float]]:
    """Studio's quantumFeatures of audio [channels, samples] (float32), as it sends them."""
    audio = np.asarray(audio, dtype=np.float32)
    x = audio[0]
    length = len(x)
    streams: dict[str, list[float]] = {}
    for name, layout in STREAM_LAYOUT.items():
        if name == "stereo" and audio.shape[0] < 2:
            streams[name] = [0.0, 0.0, 0.0]
            continue
        kept = kept_indices(layout.frames(length) * layout.per_frame, MAX_STREAM_VALUES)
        frame, component = kept // layout.per_frame, kept % layout.per_frame
        if name == "stereo":
            values = _stereo(audio[0], audio[1], frame, component)
        else:
            values = {"spectral": _spectral, "temporal": _temporal, "harmonic": _harmonic, "percussive": _percussive}[name](
                x, frame, component
            )
        streams[name] = values.astype(np.float32).tolist()
    count = (length - 1) // ENERGY_WINDOW if length > ENERGY_WINDOW else 0  # frames start while i < length - 2048
    if count:
        envelope = _rms(x[: count * ENERGY_WINDOW].reshape(count, ENERGY_WINDOW))
        streams["energy"] = np.array([envelope.mean(), envelope.var(), envelope.max(), envelope.min()], np.float32).tolist()
    else:
        streams["energy"] = []
    return streams


def ground_truth_values(stem: np.ndarray) -> list[float]:
    """Studio's ground truth of one stem: channel 0, every ceil(n/500)-th sample."""
    channel = np.asarray(stem, dtype=np.float32)[0]
    return channel[kept_indices(len(channel), MAX_STEM_VALUES)].tolist()


# --- Studio's musical context and classification ---------------------------------------------
# classifier.ts, key.ts, bpm.ts, transients.ts and musicalContextStemEngine.ts's
# analyzeHarmonicContent, on channel 0 as float32 samples compared and summed in float64, as
# JavaScript does. Sums that decide a comparison run left to right (np.cumsum), like Studio's
# loops, so ties break the same way.

NOTE_FFT = 2048  # key.ts and analyzeHarmonicContent: chunks of this many samples
TRANSIENT_THRESHOLD = 0.35
BPM_PEAK = 0.6
BPM_GRID = 512
CLASSIFY_STRIDE = 128
DOMINANT_BINS = 128
MAX_DOMINANT_FREQUENCIES = 10
TENSION_LEVEL = 0.5  # Studio's placeholder
CLASSIFICATION_CONFIDENCE = {"vocal": 0.7, "twotrack": 0.65, "full": 0.6}


def _js_round(value: float) -> int:
    return math.floor(value + 0.5)  # Math.round: halves go up


def _sequential_sum(values: np.ndarray) -> float:
    return float(np.cumsum(values, dtype=np.float64)[-1]) if len(values) else 0.0


def classify(x: np.ndarray) -> tuple[str, float]:
    """classifyAudio: (type, confidence) from the energy of the first, middle and last thirds
    of channel 0 (by position: Studio calls them low, mid and high)."""
    length = len(x)
    index = np.arange(0, length, CLASSIFY_STRIDE)
    sample = np.abs(x[index].astype(np.float64))
    first, middle = index < length * 0.33, index < length * 0.66
    low = _sequential_sum(sample[first])
    mid = _sequential_sum(sample[middle & ~first])
    high = _sequential_sum(sample[~middle])
    kind = "vocal" if high > mid and high > low else "twotrack" if mid > low else "full"
    return kind, CLASSIFICATION_CONFIDENCE[kind]


def _chunks(x: np.ndarray) -> np.ndarray:
    """Channel 0 in NOTE_FFT-sample chunks, as key.ts loops (i < length - 2048)."""
    count = max(0, math.ceil((len(x) - NOTE_FFT) / NOTE_FFT))
    return x[: count * NOTE_FFT].reshape(count, NOTE_FFT)


def detect_key(x: np.ndarray, sample_rate: float) -> str:
    """key.ts detectKey: the note of each chunk's loudest sample *position*, most common wins."""
    counts = [0] * len(KEYS)
    peaks = np.abs(_chunks(x)).argmax(axis=1) if len(x) > NOTE_FFT else np.zeros(0, int)
    with np.errstate(divide="ignore"):
        midi = 12 * np.log2(peaks * sample_rate / NOTE_FFT / 440) + 69
    for note in midi[np.isfinite(midi)]:
        index = math.fmod(_js_round(float(note)), 12)  # JavaScript's % keeps the sign
        if index >= 0:
            counts[int(index)] += 1
    return KEYS[counts.index(max(counts))]


def detect_bpm(x: np.ndarray, sample_rate: float) -> int | None:
    """bpm.ts detectBPM: from the spacing of samples above 0.6 on a 512-sample grid."""
    peaks = np.flatnonzero(np.abs(x[::BPM_GRID].astype(np.float64)) > BPM_PEAK) * BPM_GRID
    if len(peaks) < 2:
        return None
    frequencies = sample_rate / np.diff(peaks).astype(np.float64)
    return _js_round(_sequential_sum(frequencies) / len(frequencies) * 60)


def detect_transients(x: np.ndarray, sample_rate: float) -> list[dict]:
    """transients.ts detectTransients: every sample where |x| rises above 0.35 (strength 1)."""
    level = np.abs(x.astype(np.float64))
    onsets = np.flatnonzero((level[1:] > TRANSIENT_THRESHOLD) & (level[:-1] <= TRANSIENT_THRESHOLD)) + 1
    strengths = np.minimum(1.0, level[onsets] / TRANSIENT_THRESHOLD)
    return [{"time": i / sample_rate, "strength": s} for i, s in zip(onsets.tolist(), strengths.tolist(), strict=True)]


def dominant_frequencies(x: np.ndarray, sample_rate: float) -> list[float]:
    """analyzeHarmonicContent: the 128 first samples' magnitudes summed over the chunks, the 10
    largest named as if they were FFT bins (index x rate / 4096); ties keep index order."""
    chunks = _chunks(x)
    energy = (
        np.cumsum(np.abs(chunks[:, :DOMINANT_BINS].astype(np.float64)), axis=0)[-1] if len(chunks) else np.zeros(DOMINANT_BINS)
    )
    order = sorted(range(DOMINANT_BINS), key=lambda index: -energy[index])
    return [index * sample_rate / (2 * NOTE_FFT) for index in order[:MAX_DOMINANT_FREQUENCIES]]


def musical_context(x: np.ndarray, sample_rate: float) -> dict:
    """analyzeMusicalContext, as buildStemSeparationSnapshot sends it (no mode: Studio sets none)."""
    return {
        "key": detect_key(x, sample_rate),
        "bpm": detect_bpm(x, sample_rate),
        "transients": detect_transients(x, sample_rate),
        "harmonicContent": {"dominantFrequencies": dominant_frequencies(x, sample_rate), "tensionLevel": TENSION_LEVEL},
    }


def studio_snapshot(
    audio: np.ndarray,
    sample_rate: int,
    *,
    snapshot_id: str,
    timestamp: int,
    ground_truth: dict[str, np.ndarray] | None = None,
    user_corrections: list[dict] | None = None,
    processing_time: float = 0.0,
) -> dict:
    """The snapshot Studio's builder makes for a decoded buffer [channels, samples] (float32):
    classifyAudio, extractFeatures' streams, analyzeMusicalContext, buildStemSeparationSnapshot,
    with the ground-truth stems (each [channels, samples]) through its stemsToFeatures. Unlike
    Studio it never builds the superposition and never skips a class (the kit's buildSnapshot is
    the same in JavaScript)."""
    audio = np.asarray(audio, dtype=np.float32)
    x = audio[0]
    kind, confidence = classify(x)
    snapshot = {
        "id": snapshot_id,
        "timestamp": timestamp,
        "originalAudio": {"duration": audio.shape[1] / sample_rate, "sampleRate": sample_rate, "channels": audio.shape[0]},
        "quantumFeatures": studio_streams(audio),
        "musicalContext": musical_context(x, sample_rate),
        "metadata": {"classification": kind, "confidence": confidence, "processingTime": processing_time},
    }
    if ground_truth is not None:
        snapshot["groundTruthStems"] = {stem: ground_truth_values(values) for stem, values in ground_truth.items()}
    if user_corrections is not None:
        snapshot["userCorrections"] = user_corrections
    return snapshot


# --- Studio's static filter stems (docs/contract.md, "How Studio separates") -----------------
# Web Audio's BiquadFilterNode uses the Audio EQ Cookbook (RBJ) formulas; Q defaults to 1
# (lowpass/highpass Q is in dB there: 1 dB), notch Q as given.


def _biquad(kind: str, frequency: float, sample_rate: float, q: float = 1.0, gain_db: float = 0.0) -> tuple:
    w0 = 2 * np.pi * frequency / sample_rate
    cos_w0, sin_w0 = np.cos(w0), np.sin(w0)
    if kind in ("lowpass", "highpass"):
        alpha = sin_w0 / (2 * 10 ** (q / 20))  # Web Audio: Q in dB for these two
        if kind == "lowpass":
            b = [(1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2]
        else:
            b = [(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2]
        a = [1 + alpha, -2 * cos_w0, 1 - alpha]
    elif kind == "notch":
        alpha = sin_w0 / (2 * q)
        b, a = [1, -2 * cos_w0, 1], [1 + alpha, -2 * cos_w0, 1 - alpha]
    elif kind == "peaking":
        amplitude = 10 ** (gain_db / 40)
        alpha = sin_w0 / (2 * q)
        b = [1 + alpha * amplitude, -2 * cos_w0, 1 - alpha * amplitude]
        a = [1 + alpha / amplitude, -2 * cos_w0, 1 - alpha / amplitude]
    else:
        raise ValueError(kind)
    return np.array(b) / a[0], np.array(a) / a[0]


def _chain(audio: np.ndarray, sample_rate: float, filters: list[tuple]) -> np.ndarray:
    from scipy.signal import lfilter

    out = np.asarray(audio, dtype=np.float64)
    for spec in filters:
        kind, frequency, *rest = spec
        if frequency >= sample_rate / 2:
            continue  # above Nyquist: Web Audio clamps it to a no-op
        b, a = _biquad(kind, frequency, sample_rate, *rest)
        out = lfilter(b, a, out, axis=-1)
    return out


def filter_stems(mix: np.ndarray, sample_rate: float, classification: str = "full") -> dict[str, np.ndarray]:
    """Studio's stems of a mix [channels, samples]: the static filters of its default path
    (musicalContextStemEngine.ts: its key-aware notches are empty placeholders there, and the
    drums' compressor is left out: a static gain stage does not change which stem is where) and
    the worker fallback's bands for perc and sub, which the default path does not produce."""
    vocals_chain = [("peaking", 1500.0, 2.0, 6.0), ("highpass", 80.0), ("lowpass", 8000.0)]
    stems = {
        "vocals": _chain(mix, sample_rate, vocals_chain) if classification in ("twotrack", "full") else np.zeros_like(mix),
        "drums": 1.2 * _chain(mix, sample_rate, [("highpass", 200.0)]),
        "bass": _chain(mix, sample_rate, [("lowpass", 250.0)]),
        "harmonic": _chain(mix, sample_rate, [("highpass", 250.0), ("notch", 1500.0, 2.0)]),
        "perc": _chain(mix, sample_rate, [("highpass", 2000.0)]),
        "sub": _chain(mix, sample_rate, [("lowpass", 60.0), ("lowpass", 60.0)]),
    }
    return {stem: stems[stem] for stem in STEMS}
