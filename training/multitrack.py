"""Multitrack songs on disk (MUSDB18's layout: one folder per song, one WAV or FLAC file per
stem) read, checked, and turned into the snapshot Studio would send for their mix.

A song is refused with a message that says why (SongError) when a stem file cannot be read,
stems differ in sample rate or length, no stem is there, or the mix is silent; the caller
skips that song and goes on. MUSDB18's `other` stands for `harmonic`; its `mixture` file is not
read (the mix is the sum of the stems, so stems and mix always agree).
"""

import hashlib
import math
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from training.contract import STEMS
from training.studio_snapshot import studio_snapshot

AUDIO_SUFFIXES = (".wav", ".flac")
ALIASES = {"other": "harmonic"}
SILENT_PEAK = 1e-4  # -80 dBFS
MIXTURE = "mixture"


class SongError(ValueError):
    """This song cannot be used, and why."""


@dataclass(frozen=True)
class Song:
    name: str
    sample_rate: int
    stems: dict[str, np.ndarray]  # stem -> [channels, samples] float32; only the stems given
    modified_ms: int = 0  # the newest file's modification time
    mixture: np.ndarray | None = None  # [channels, samples] float32, from the mixture file

    @property
    def mix(self) -> np.ndarray:
        if self.mixture is not None:
            return self.mixture
        channels = max(audio.shape[0] for audio in self.stems.values())
        return sum(np.broadcast_to(audio, (channels, audio.shape[1])) for audio in self.stems.values()).astype(np.float32)

    @property
    def duration_s(self) -> float:
        return next(iter(self.stems.values())).shape[1] / self.sample_rate


def song_folders(root: Path) -> list[Path]:
    """Every folder under root holding audio files (or root itself, if it holds them), sorted."""

    def has_audio(folder: Path) -> bool:
        return any(p.suffix.lower() in AUDIO_SUFFIXES for p in folder.iterdir() if p.is_file())

    if not root.is_dir():
        raise SongError(f"{root} is not a folder")
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and has_audio(p)]
    return folders or ([root] if has_audio(root) else [])


def missing_stems(song: Song) -> list[str]:
    """The stems a song has no file for: unknown in its ground truth, not silent."""
    return [stem for stem in STEMS if stem not in song.stems]


def _stem_name(path: Path) -> str | None:
    name = path.stem.lower()
    name = ALIASES.get(name, name)
    return name if name in (*STEMS, MIXTURE) else None


def _resample(audio: np.ndarray, rate: int, sample_rate: int | None) -> np.ndarray:
    if sample_rate is None or sample_rate == rate:
        return audio
    from scipy.signal import resample_poly

    divisor = math.gcd(rate, sample_rate)
    return resample_poly(audio, sample_rate // divisor, rate // divisor, axis=1).astype(np.float32)


def read_song(folder: Path, sample_rate: int | None = None) -> Song:
    """The song in folder, at its files' rate or resampled to sample_rate."""
    stems: dict[str, np.ndarray] = {}
    rates: dict[str, int] = {}
    for path in sorted(folder.iterdir()):
        stem = _stem_name(path)
        if stem is None or path.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        if stem in stems:
            raise SongError(f"{folder.name}: two files for the {stem} stem")
        try:
            audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            raise SongError(f"{folder.name}: cannot read {path.name}: {error}") from None
        if audio.size == 0:
            raise SongError(f"{folder.name}: {path.name} has no samples")
        stems[stem], rates[stem] = audio.T[:2].copy(), rate
    mixture = stems.pop(MIXTURE, None)
    if not stems:
        names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        raise SongError(
            f"{folder.name}: no stem files (expected {', '.join(STEMS)} or other, .wav or .flac; found {', '.join(names[:6])})"
        )
    if len(set(rates.values())) > 1:
        raise SongError(f"{folder.name}: stems have different sample rates: {rates}")
    lengths = {stem: audio.shape[1] for stem, audio in stems.items()}
    if mixture is not None:
        lengths[MIXTURE] = mixture.shape[1]
    if len(set(lengths.values())) > 1:
        raise SongError(f"{folder.name}: stems have different lengths (samples): {lengths}")
    modified = max(int(path.stat().st_mtime * 1000) for path in folder.iterdir() if _stem_name(path))
    rate = next(iter(rates.values()))
    stems = {stem: _resample(audio, rate, sample_rate) for stem, audio in stems.items()}
    if mixture is not None:
        mixture = _resample(mixture, rate, sample_rate)
    song = Song(folder.name, sample_rate or rate, stems, modified, mixture)
    if np.abs(song.mix).max() < SILENT_PEAK:
        raise SongError(f"{folder.name}: the mix is silent")
    return song


def snapshot_id(song: Song) -> str:
    """A UUID v4-shaped id from the song's audio: importing it again sends the same id, so the
    ingest endpoint stores it once."""
    digest = hashlib.sha256()
    if song.mixture is not None:
        digest.update(MIXTURE.encode())
        digest.update(np.ascontiguousarray(song.mixture).tobytes())
    for stem in sorted(song.stems):
        digest.update(stem.encode())
        digest.update(np.ascontiguousarray(song.stems[stem]).tobytes())
    return str(uuid.UUID(bytes=digest.digest()[:16], version=4))


def song_snapshot(song: Song) -> dict:
    """The snapshot Studio's builder would make for this song's mix (training/studio_snapshot.py, the
    twin of the kit's buildSnapshot), with the stems as ground truth. The same files give the
    same snapshot (id from the audio, timestamp from the files, no processing time), so a
    re-import is a duplicate."""
    return studio_snapshot(
        song.mix, song.sample_rate, snapshot_id=snapshot_id(song), timestamp=song.modified_ms, ground_truth=song.stems
    )
