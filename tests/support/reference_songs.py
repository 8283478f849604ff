"""The songs that hold our snapshot builders to Studio's own code (tests/fixtures/studio_reference).

Each is a song rendered by training/render.py (sampled instruments), cut, mixed at a gain and
written as 16-bit PCM: what a user gives Studio. Studio's own snapshot code, run unchanged by
../shared/studio-reference on these files, wrote studio/<song>.json (its snapshot) and
<song>.run.json (how its code behaved); CI cannot fetch Studio, so both are committed beside the
audio (FLAC: the same 16-bit samples, smaller). To make them again:

    .venv/bin/python -m tests.support.reference_songs STUDIO_GIT_DIR
"""

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from training.contract import FEATURE_STREAMS

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "studio_reference"
SONGS_DIR = ROOT / "songs"
STUDIO_DIR = ROOT / "studio"
TOOL = Path(__file__).resolve().parents[3] / "shared" / "studio-reference" / "run.sh"


@dataclass(frozen=True)
class ReferenceSong:
    name: str
    seed: int
    seconds: float
    sample_rate: int
    channels: int
    gain: float  # the mix's gain: loud ones reach Studio's transient (0.35) and BPM (0.6) levels
    stems: bool  # whether the stems travel as ground truth


SONGS = (
    ReferenceSong("r01-stereo-44k-1s", 901, 1.0, 44100, 2, 1.0, True),
    ReferenceSong("r02-mono-48k-1s", 902, 1.0, 48000, 1, 1.5, False),
    ReferenceSong("r03-stereo-48k-2s-loud", 903, 2.0, 48000, 2, 3.0, True),
    ReferenceSong("r04-mono-44k-3s", 904, 3.0, 44100, 1, 1.0, True),
    ReferenceSong("r05-stereo-44k-4s-quiet", 905, 4.0, 44100, 2, 0.2, False),
    ReferenceSong("r06-mono-48k-5s-loud", 906, 5.0, 48000, 1, 3.5, False),
    ReferenceSong("r07-stereo-48k-6s", 907, 6.0, 48000, 2, 1.2, False),
    ReferenceSong("r08-mono-44k-8s", 908, 8.0, 44100, 1, 2.0, False),
    ReferenceSong("r09-stereo-44k-10s-loud", 909, 10.0, 44100, 2, 2.5, True),
    ReferenceSong("r10-mono-48k-12s", 910, 12.0, 48000, 1, 1.0, False),
    ReferenceSong("r11-stereo-48k-20s", 911, 20.0, 48000, 2, 2.0, False),
    ReferenceSong("r12-mono-44k-20s-loud", 912, 20.0, 44100, 1, 3.0, False),
    # Several minutes: Studio's own step fails here, its streams are captured on the way in.
    ReferenceSong("r13-mono-44k-180s", 913, 180.0, 44100, 1, 1.5, False),
)


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """[channels, samples] float32 (16-bit PCM as value / 32768, as browsers decode it), rate."""
    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T), rate


def song_audio(song: ReferenceSong) -> dict[str, np.ndarray]:
    """'mixture' and, where the song has them, its stems: [channels, samples] float32 each."""
    folder = SONGS_DIR / song.name
    return {path.stem: read_audio(path)[0] for path in sorted(folder.glob("*.flac"))}


def assert_same_snapshot(ours: dict, studio: dict) -> None:
    """Ours equals Studio's: streams and ground truth bit for bit, context and classification equal,
    dominant frequencies to 1e-6 (only id, timestamp and processing time may differ)."""
    for stream in FEATURE_STREAMS:
        expected = np.asarray(studio["quantumFeatures"][stream], np.float32)
        got = np.asarray(ours["quantumFeatures"][stream], np.float32)
        assert got.shape == expected.shape, stream
        assert np.array_equal(got.view(np.int32), expected.view(np.int32)), f"{stream}: {(got != expected).sum()} values differ"
    studio_truth = {stem: values for stem, values in (studio.get("groundTruthStems") or {}).items() if values is not None}
    ours_truth = ours.get("groundTruthStems") or {}
    assert sorted(ours_truth) == sorted(studio_truth)
    for stem, values in studio_truth.items():
        assert np.array_equal(np.asarray(ours_truth[stem], np.float32), np.asarray(values, np.float32)), stem
    context, studio_context = ours["musicalContext"], studio["musicalContext"]
    for name in ("key", "bpm"):
        assert context[name] == studio_context[name], name
    assert context.get("mode") == studio_context.get("mode")
    assert [t["time"] for t in context["transients"]] == [t["time"] for t in studio_context["transients"]]
    assert [t["strength"] for t in context["transients"]] == [t["strength"] for t in studio_context["transients"]]
    np.testing.assert_allclose(
        context["harmonicContent"]["dominantFrequencies"],
        studio_context["harmonicContent"]["dominantFrequencies"],
        rtol=0,
        atol=1e-6,
    )
    assert context["harmonicContent"]["tensionLevel"] == studio_context["harmonicContent"]["tensionLevel"]
    for name in ("classification", "confidence"):
        assert ours["metadata"][name] == studio["metadata"][name], name
    assert ours["originalAudio"] == studio["originalAudio"]


def _render(song: ReferenceSong, scratch: Path) -> dict[str, np.ndarray]:
    from training.render import render_song

    folder = render_song(scratch, song.seed, song.seconds, song.sample_rate)
    stems = {path.stem: read_audio(path)[0] for path in sorted(folder.glob("*.wav"))}
    if song.channels == 1:
        stems = {stem: audio.mean(axis=0, keepdims=True) for stem, audio in stems.items()}
    stems = {stem: audio * song.gain for stem, audio in stems.items()}
    stems["mixture"] = sum(stems.values())
    # Quantised here: libsndfile scales floats by 32767 for WAV and by 32768 for FLAC.
    return {stem: np.clip(np.round(audio * 32768), -32768, 32767).astype(np.int16) for stem, audio in stems.items()}


def make(studio_git_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for song in SONGS:
            audio = _render(song, scratch / "render")
            folder = SONGS_DIR / song.name
            folder.mkdir(parents=True, exist_ok=True)
            for stem, samples in audio.items():
                if stem == "mixture" or song.stems:
                    soundfile.write(folder / f"{stem}.flac", samples.T, song.sample_rate, subtype="PCM_16")
                    wav = scratch / "studio-input" / song.name / f"{stem}.wav"
                    wav.parent.mkdir(parents=True, exist_ok=True)
                    soundfile.write(wav, samples.T, song.sample_rate, subtype="PCM_16")
        STUDIO_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["bash", str(TOOL), str(studio_git_dir), str(scratch / "studio-input"), str(STUDIO_DIR)], check=True)


if __name__ == "__main__":
    make(Path(sys.argv[1]))
