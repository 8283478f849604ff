"""Multitrack songs played by real sampled instruments, for development and tests.

Each song is an arrangement made from a seed (tempo, key, chord progression, 4-bar sections in
which each stem plays or rests) written as one General MIDI file per stem and rendered by the
FluidSynth program with Debian's `fluid-soundfont-gm` (FluidR3_GM: recorded instrument samples).
The output is MUSDB18's layout: one folder per song, one audio file per stem, which is what
`fabric import-stems` and `fabric evaluate --audio` read. Nothing is downloaded.

Stems that rest for a whole section are what make per-stem gains over time worth learning.
"""

import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile

from training.contract import STEMS

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9
# General MIDI programs per stem (0-based); each song draws one.
PROGRAMS = {
    "vocals": (52, 53, 54, 85, 65, 73),  # choir, voice oohs, synth voice, lead voice, alto sax, flute
    "bass": (32, 33, 34, 35, 36, 38),
    "harmonic": (0, 4, 16, 24, 48, 49, 88, 89),  # pianos, organ, guitar, strings, pads
    "sub": (38, 39, 81),  # synth basses and a saw lead, an octave below the bass
}
PERC_NOTES = (54, 70, 62, 63, 64, 60, 61, 75, 56, 69)  # tambourine, maracas, congas, bongos, claves, cowbell, cabasa
# How often a stem plays in a section.
PLAYS = {"vocals": 0.55, "drums": 0.7, "bass": 0.75, "harmonic": 0.8, "perc": 0.5, "sub": 0.45}
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 4), (0, 2, 5, 4))


@dataclass(frozen=True)
class Note:
    start: float  # beats
    length: float  # beats
    pitch: int
    velocity: int


def _arrangement(rng: np.random.Generator, seconds: float) -> tuple[float, dict[str, list[Note]], dict[str, int], dict[str, int]]:
    """(tempo, notes per stem, program per stem, pan per stem) for one song."""
    bpm = float(rng.uniform(80, 140))
    bars = max(4, int(round(seconds * bpm / 60 / 4)))
    tonic = int(rng.integers(0, 12))
    scale = MAJOR if rng.random() < 0.6 else MINOR
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    sections = [bars_start for bars_start in range(0, bars, 4)]
    playing = {stem: [bool(rng.random() < PLAYS[stem]) for _ in sections] for stem in STEMS}
    for index in range(len(sections)):  # at least two stems in every section
        while sum(playing[stem][index] for stem in STEMS) < 2:
            playing[STEMS[rng.integers(len(STEMS))]][index] = True
    notes: dict[str, list[Note]] = {stem: [] for stem in STEMS}

    def degree_pitch(degree: int, octave: int) -> int:
        return 12 * (octave + 1) + tonic + scale[degree % 7] + 12 * (degree // 7)

    drum_pattern = rng.integers(0, 3)
    for section_index, first_bar in enumerate(sections):
        for bar in range(first_bar, min(first_bar + 4, bars)):
            root = progression[bar % len(progression)]
            beat0 = bar * 4.0
            if playing["harmonic"][section_index]:
                chord = [degree_pitch(root + step, 3) for step in (0, 2, 4)]
                rhythm = (0.0, 2.0) if rng.random() < 0.5 else (0.0, 1.0, 2.0, 3.0)
                for offset in rhythm:
                    notes["harmonic"] += [Note(beat0 + offset, 4.0 / len(rhythm), p, 70) for p in chord]
            if playing["bass"][section_index]:
                for offset in (0.0, 1.0, 1.5, 2.0, 3.0, 3.5) if drum_pattern else (0.0, 1.0, 2.0, 3.0):
                    fifth = rng.random() < 0.25
                    notes["bass"].append(Note(beat0 + offset, 0.45, degree_pitch(root + (4 if fifth else 0), 2), 95))
            if playing["sub"][section_index]:
                notes["sub"].append(Note(beat0, 3.8, degree_pitch(root, 1), 100))
            if playing["vocals"][section_index]:
                position, degree = 0.0, root + 7
                while position < 4.0:
                    length = float(rng.choice((0.5, 1.0, 1.0, 1.5, 2.0)))
                    if rng.random() < 0.8:  # a sung note, else a breath
                        degree = int(np.clip(degree + rng.integers(-2, 3), 3, 13))
                        notes["vocals"].append(Note(beat0 + position, min(length, 4.0 - position), degree_pitch(degree, 3), 100))
                    position += length
            if playing["drums"][section_index]:
                for eighth in range(8):
                    notes["drums"].append(Note(beat0 + eighth / 2, 0.25, 42, 70))  # closed hi-hat
                kicks = (0.0, 2.0) if drum_pattern != 2 else (0.0, 1.5, 2.5)
                notes["drums"] += [Note(beat0 + k, 0.25, 36, 110) for k in kicks]
                notes["drums"] += [Note(beat0 + s, 0.25, 38, 100) for s in (1.0, 3.0)]
            if playing["perc"][section_index]:
                instrument = PERC_NOTES[(section_index + tonic) % len(PERC_NOTES)]
                for sixteenth in range(16):
                    if rng.random() < 0.55:
                        notes["perc"].append(Note(beat0 + sixteenth / 4, 0.2, instrument, int(rng.integers(60, 110))))
    programs = {stem: int(rng.choice(PROGRAMS[stem])) for stem in PROGRAMS}
    pans = {stem: int(rng.integers(24, 104)) for stem in STEMS}
    pans["bass"] = pans["sub"] = 64
    return bpm, notes, programs, pans


def _midi_file(notes: list[Note], bpm: float, program: int | None, pan: int, path: Path) -> None:
    channel = DRUM_CHANNEL if program is None else 0
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
    if program is not None:
        track.append(mido.Message("program_change", channel=channel, program=program))
    track.append(mido.Message("control_change", channel=channel, control=10, value=pan))
    events = []
    for note in notes:
        events.append((round(note.start * TICKS_PER_BEAT), 1, note.pitch, note.velocity))
        events.append((round((note.start + note.length) * TICKS_PER_BEAT), 0, note.pitch, 0))
    now = 0
    for tick, is_on, pitch, velocity in sorted(events):
        kind = "note_on" if is_on else "note_off"
        track.append(mido.Message(kind, channel=channel, note=pitch, velocity=velocity, time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    midi.save(path)


def render_song(out_dir: Path, seed: int, seconds: float = 30.0, sample_rate: int = 22050, audio_format: str = "wav") -> Path:
    """Renders one generated song into out_dir/song-<seed>/<stem>.<format>; returns its folder."""
    rng = np.random.default_rng(seed)
    bpm, notes, programs, pans = _arrangement(rng, seconds)
    return render_stems(out_dir / f"song-{seed:05d}", bpm, notes, programs, pans, seconds, sample_rate, audio_format)


def render_stems(
    song: Path,
    bpm: float,
    notes: dict[str, list[Note]],
    programs: dict[str, int],
    pans: dict[str, int],
    seconds: float,
    sample_rate: int,
    audio_format: str = "wav",
) -> Path:
    """Plays each stem's notes (drums and perc on the drum channel, the others with their General
    MIDI program) and writes song/<stem>.<format>, `seconds` long. A stem that never plays is
    still written (silent): a silent stem is ground truth too."""
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        raise RuntimeError("rendering needs Debian's fluidsynth and fluid-soundfont-gm (make install)")
    song.mkdir(parents=True, exist_ok=True)
    length = int(seconds * sample_rate)
    with tempfile.TemporaryDirectory() as scratch:

        def render(stem: str) -> np.ndarray:
            midi, wav = Path(scratch) / f"{stem}.mid", Path(scratch) / f"{stem}.wav"
            program = None if stem in ("drums", "perc") else programs[stem]
            _midi_file(notes.get(stem, []), bpm, program, pans[stem], midi)
            subprocess.run(
                ["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(sample_rate), "-F", str(wav), str(SOUNDFONT), str(midi)],
                check=True,
                capture_output=True,
                timeout=300,
            )
            audio, _ = soundfile.read(wav, dtype="float32", always_2d=True)
            out = np.zeros((length, 2), np.float32)
            out[: min(length, len(audio))] = audio[:length]
            return out

        with ThreadPoolExecutor(max_workers=2) as pool:
            stems = dict(zip(STEMS, pool.map(render, STEMS), strict=True))
    for stem, audio in stems.items():
        soundfile.write(song / f"{stem}.{audio_format}", audio, sample_rate)
    return song
