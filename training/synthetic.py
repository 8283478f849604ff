"""Synthetic Studio snapshots, for the demo and the tests.

Synthesises six stems (vocals, drums, bass, harmonic, perc, sub) on a beat grid, with each
stem switched on and off over the track's sections so stem loudness varies, mixes them, and
computes the snapshot from the mixture as Studio does (training/studio_snapshot.py). Synthetic tones,
not instruments: fine for exercising the service; models are developed on rendered
instruments (training/render.py).
"""

import uuid
from typing import Any

import numpy as np

from training.contract import KEYS, STEMS
from training.studio_snapshot import ground_truth_values, studio_streams

SAMPLE_RATE = 22_050
SECTIONS = 4


def _frames(signal: np.ndarray, size: int) -> np.ndarray:
    count = len(signal) // size
    return signal[: count * size].reshape(count, size)


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    padded = np.concatenate([np.full(width // 2, values[0]), values, np.full(width - width // 2, values[-1])])
    sums = np.cumsum(padded)
    return (sums[width:] - sums[:-width])[: len(values)] / width


def _tone(frequency: np.ndarray, harmonics: list[float]) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(frequency) / SAMPLE_RATE
    return sum(weight * np.sin((k + 1) * phase) for k, weight in enumerate(harmonics))


def _decay(length: int, seconds: float) -> np.ndarray:
    return np.exp(-np.arange(length) / (seconds * SAMPLE_RATE))


def synthesize_stems(rng: np.random.Generator, duration_s: float, bpm: float, key_index: int) -> dict[str, np.ndarray]:
    """Six stereo stems [2, samples], each silent in some sections."""
    n = int(duration_s * SAMPLE_RATE)
    beat = int(SAMPLE_RATE * 60.0 / bpm)
    root = 55.0 * 2 ** (key_index / 12)  # A1..G#2
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    stems = {stem: np.zeros(n) for stem in STEMS}

    # Drums: a pitch-swept kick on every beat, a noisy snare on beats 2 and 4.
    for index, start in enumerate(range(0, n, beat)):
        length = min(int(0.25 * SAMPLE_RATE), n - start)
        t = np.arange(length) / SAMPLE_RATE
        kick = np.sin(2 * np.pi * (45 + 75 * np.exp(-t / 0.03)) * t) * _decay(length, 0.12)
        stems["drums"][start : start + length] += kick
        if index % 2 == 1:
            snare = rng.normal(size=length) * 0.5 + 0.4 * np.sin(2 * np.pi * 180 * t)
            stems["drums"][start : start + length] += snare * _decay(length, 0.07)
    # Percussion: short high-passed noise on every eighth note.
    for start in range(0, n, beat // 2):
        length = min(int(0.06 * SAMPLE_RATE), n - start)
        noise = rng.normal(size=length + 1)
        stems["perc"][start : start + length] += 0.35 * np.diff(noise) * _decay(length, 0.02)
    # Bass: a plucked note a beat, on scale degrees; sub: the bar's root, sustained.
    for index, start in enumerate(range(0, n, beat)):
        length = min(beat, n - start)
        degree = scale[rng.integers(0, 7)] if index % 4 else 0
        frequency = np.full(length, root * 2 ** (degree / 12))
        stems["bass"][start : start + length] = 0.6 * _tone(frequency, [1, 0.5, 0.33, 0.25]) * _decay(length, 0.3)
        if index % 4 == 0:
            bar = min(4 * beat, n - start)
            stems["sub"][start : start + bar] = 0.7 * np.sin(2 * np.pi * root / 2 * np.arange(bar) / SAMPLE_RATE)
    # Harmonic: a three-note chord a bar, softly attacked.
    for bar_start in range(0, n, 4 * beat):
        length = min(4 * beat, n - bar_start)
        degree = scale[rng.integers(0, 7)]
        chord = sum(
            np.sin(2 * np.pi * root * 4 * 2 ** ((degree + step) / 12) * np.arange(length) / SAMPLE_RATE) for step in (0, 4, 7)
        )
        attack = np.minimum(1.0, np.arange(length) / (0.2 * SAMPLE_RATE))
        stems["harmonic"][bar_start : bar_start + length] = 0.25 * chord * attack
    # Vocals: a melody of half-bar notes with vibrato and a few harmonics.
    for start in range(0, n, 2 * beat):
        length = min(2 * beat, n - start)
        degree = scale[rng.integers(0, 7)] + 12 * rng.integers(0, 2)
        t = np.arange(length) / SAMPLE_RATE
        frequency = root * 8 * 2 ** (degree / 12) * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
        gate = np.minimum(1.0, t / 0.05) * np.minimum(1.0, (length / SAMPLE_RATE - t) / 0.05)
        stems["vocals"][start : start + length] = 0.4 * _tone(frequency, [1, 0.6, 0.4, 0.25, 0.15]) * gate

    section = np.minimum(np.arange(n) * SECTIONS // n, SECTIONS - 1)
    stereo = {}
    for stem, signal in stems.items():
        gains = np.where(rng.random(SECTIONS) < 0.3, 0.0, rng.uniform(0.3, 1.0, SECTIONS))
        smooth = _moving_average(gains[section], 512)  # no clicks at section changes
        pan = rng.uniform(-0.6, 0.6)
        stereo[stem] = np.stack([signal * smooth * (1 - pan) / 2, signal * smooth * (1 + pan) / 2])
    return stereo


def _analysis(mix: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Dominant frequencies and transients (time, strength) of a mixture, as a musical analysis
    would give them."""
    mono = mix.mean(axis=0)
    whole = np.abs(np.fft.rfft(mono))
    top = np.argsort(whole)[-10:][::-1]
    energy = np.sqrt((_frames(mono, 512) ** 2).mean(axis=1))
    rise = np.diff(energy, prepend=energy[:1])
    onsets = np.flatnonzero(rise > 0.5 * energy.std())[:200]
    return top * SAMPLE_RATE / len(mono), [(float(f * 512 / SAMPLE_RATE), float(energy[f])) for f in onsets]


def synthetic_snapshot(rng: np.random.Generator, timestamp_ms: int = 1_764_000_000_000) -> dict[str, Any]:
    """One Studio-shaped snapshot (camelCase, as the exporter sends it) with ground truth."""
    duration = float(rng.uniform(4.0, 8.0))
    bpm = float(round(rng.uniform(80.0, 160.0), 2))
    key_index = int(rng.integers(0, 12))
    stems = synthesize_stems(rng, duration, bpm, key_index)
    mix = sum(stems.values())
    scale = 0.9 / max(np.abs(mix).max(), 1e-9)
    mix *= scale
    mix = mix.astype(np.float32)
    dominant, transients = _analysis(mix)

    return {
        "id": str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63)), version=4)),
        "timestamp": timestamp_ms + int(rng.integers(0, 10**9)),
        "originalAudio": {"duration": round(mix.shape[1] / SAMPLE_RATE, 6), "sampleRate": SAMPLE_RATE, "channels": 2},
        "quantumFeatures": studio_streams(mix),
        "musicalContext": {
            "key": KEYS[key_index],
            "mode": "major" if rng.random() < 0.5 else "minor",
            "bpm": bpm,
            "transients": [{"time": t, "strength": s} for t, s in transients],
            "harmonicContent": {
                "dominantFrequencies": [float(f) for f in dominant],
                "tensionLevel": float(rng.uniform(0, 1)),
            },
        },
        "groundTruthStems": {stem: ground_truth_values(stems[stem] * scale) for stem in STEMS},
        "metadata": {"classification": "synthetic", "confidence": float(rng.uniform(0.5, 1.0)), "processingTime": 0.0},
    }


def synthetic_snapshots(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [synthetic_snapshot(rng) for _ in range(count)]
