"""Real compositions played by sampled instruments: public-domain scores from music21's corpus
(Bach's four-part chorales, Palestrina's masses, Monteverdi's madrigals), arranged for Studio's
six stems and rendered per stem by FluidSynth (training/render.py), in MUSDB18's layout.

The notes, harmony and voice leading are the composer's; what is drawn from the seed is the
arrangement a band would make of them: the tempo, which voice each stem plays (the top voice
sings, the lowest is the bass, the inner voices are the harmonic stem, the sub doubles the bass
an octave down), instruments and pans, a drum and a percussion part on the score's own bars,
and which stems rest in each four-bar section, at what level. Stems that rest in whole sections
and change level are what make per-stem gains over time worth learning.

A work is identified by its corpus path (`work_name`); several excerpts of one work share it,
so a benchmark can keep every excerpt of a work in one split.
"""

import bisect
from pathlib import Path

import numpy as np

from training.contract import STEMS
from training.render import PERC_NOTES, PLAYS, PROGRAMS, Note, render_stems

COMPOSERS = ("bach", "palestrina", "monteverdi")
SECTION_BARS = 4


def corpus_works(composers: tuple[str, ...] = COMPOSERS) -> list[Path]:
    """Every polyphonic work of those composers in music21's corpus, in a fixed order."""
    from music21 import corpus

    works = []
    for composer in composers:
        paths = sorted(corpus.getComposer(composer))
        # Bach's entry also holds a few instrumental works; the chorales are the bwv*.* files.
        works += [p for p in paths if composer != "bach" or p.name.startswith("bwv")]
    return works


def work_name(path: Path) -> str:
    return f"{path.parent.name}-{path.stem}".replace(" ", "_")


def _voices(path: Path) -> tuple[list[list[tuple[float, float, int]]], list[float]]:
    """Each part's notes as (start, length, midi pitch) in quarter notes, parts from the highest
    to the lowest by mean pitch, and the offsets of the first part's bars."""
    from music21 import converter

    score = converter.parse(path)
    voices = []
    for part in score.parts:
        notes = [
            (float(element.offset), float(element.quarterLength), pitch.midi)
            for element in part.flatten().stripTies().notes
            for pitch in element.pitches
            if element.quarterLength > 0
        ]
        if notes:
            voices.append(notes)
    voices.sort(key=lambda notes: -np.mean([pitch for _, _, pitch in notes]))
    bars = [float(m.offset) for m in score.parts[0].getElementsByClass("Measure")]
    return voices, bars or [0.0]


def arrange(path: Path, seed: int, seconds: float):
    """(tempo, notes per stem, program per stem, pan per stem) for an excerpt of `seconds` of the
    work at `path`, starting at a bar drawn from the seed. Raises ValueError for a work with
    fewer than three voices."""
    rng = np.random.default_rng(seed)
    voices, bars = _voices(path)
    if len(voices) < 3:
        raise ValueError(f"{work_name(path)} has {len(voices)} voices; an arrangement needs three")
    bpm = float(rng.uniform(80, 130))  # quarter notes per minute
    span = seconds * bpm / 60
    end_of_work = max(start + length for notes in voices for start, length, _ in notes)
    starts = [bar for bar in bars if bar + span <= end_of_work] or [0.0]
    first = starts[int(rng.integers(len(starts)))]
    # The usual bar (a pickup bar is shorter).
    bar_length = float(np.median(np.diff(bars))) if len(bars) > 1 else 4.0
    section_starts = [b for b in bars if first <= b < first + span][::SECTION_BARS] or [first]

    playing = {stem: [bool(rng.random() < PLAYS[stem]) for _ in section_starts] for stem in STEMS}
    for index in range(len(section_starts)):  # at least two stems in every section
        while sum(playing[stem][index] for stem in STEMS) < 2:
            playing[STEMS[rng.integers(len(STEMS))]][index] = True
    levels = {stem: rng.integers(55, 115, len(section_starts)) for stem in STEMS}

    def section_of(beat: float) -> int:
        return max(0, bisect.bisect_right(section_starts, beat) - 1)

    def play(stem: str, notes: list[tuple[float, float, int]], shift: int = 0) -> list[Note]:
        out = []
        for start, length, pitch in notes:
            if first <= start < first + span and playing[stem][section := section_of(start)]:
                velocity = int(levels[stem][section])
                out.append(Note(start - first, min(length, first + span - start), pitch + shift, velocity))
        return out

    lowest = voices[-1]
    notes = {
        "vocals": play("vocals", voices[0]),
        "harmonic": play("harmonic", [n for inner in voices[1:-1] for n in inner]),
        "bass": play("bass", lowest, -12 if np.mean([p for _, _, p in lowest]) > 52 else 0),
        "sub": play("sub", lowest, -24 if np.mean([p for _, _, p in lowest]) > 52 else -12),
        "drums": [],
        "perc": [],
    }
    # Drums and percussion on the score's own bars: the kick on each bar's downbeat and half
    # bar, the snare between, eighth-note hats; the percussion in sixteenths.
    beats_per_bar = max(1, int(round(bar_length)))
    for bar in [b for b in bars if first <= b < first + span]:
        index = section_of(bar)
        at = bar - first
        if playing["drums"][index]:
            velocity = int(levels["drums"][index])
            notes["drums"] += [Note(at + e / 2, 0.25, 42, max(40, velocity - 30)) for e in range(2 * beats_per_bar)]
            notes["drums"] += [Note(at + b, 0.25, 36, velocity) for b in range(0, beats_per_bar, 2)]
            notes["drums"] += [Note(at + b, 0.25, 38, velocity) for b in range(1, beats_per_bar, 2)]
        if playing["perc"][index]:
            instrument = PERC_NOTES[(index + seed) % len(PERC_NOTES)]
            notes["perc"] += [
                Note(at + s / 4, 0.2, instrument, int(rng.integers(50, int(levels["perc"][index]) + 1)))
                for s in range(4 * beats_per_bar)
                if rng.random() < 0.55
            ]
    programs = {stem: int(rng.choice(PROGRAMS[stem])) for stem in PROGRAMS}
    pans = {stem: int(rng.integers(24, 104)) for stem in STEMS}
    pans["bass"] = pans["sub"] = 64
    return bpm, notes, programs, pans


def render_composition(out_dir: Path, path: Path, seed: int, seconds: float = 20.0, sample_rate: int = 16_000) -> Path:
    """Renders an excerpt of the work at `path` into out_dir/<work>-s<seed>/<stem>.wav; returns
    the song's folder."""
    bpm, notes, programs, pans = arrange(path, seed, seconds)
    return render_stems(out_dir / f"{work_name(path)}-s{seed}", bpm, notes, programs, pans, seconds, sample_rate)
