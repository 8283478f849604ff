"""The corpus of real compositions the model benchmarks develop on: one excerpt of each work of
music21's corpus (training/compositions.py), rendered by the soundfont's sampled instruments,
kept in a folder for the next run, split by work."""

import hashlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SONGS_DIR = ROOT / "var" / "bench-compositions"
SONG_SECONDS, SAMPLE_RATE = 20.0, 16_000


def render_corpus(folder: Path, count: int) -> list[Path]:
    """One excerpt of each of `count` works (a fixed shuffle of the corpus), rendered if missing."""
    from training.compositions import corpus_works, render_composition, work_name

    works = corpus_works()
    folders = []
    for index in np.random.default_rng(0).permutation(len(works))[:count]:
        song = folder / f"{work_name(works[index])}-s{index}"
        if not song.exists():
            try:
                render_composition(folder, works[index], int(index), SONG_SECONDS, SAMPLE_RATE)
            except ValueError:  # fewer than three voices
                continue
        folders.append(song)
    return folders


def by_work(names: list[str], salt: str = "") -> list[int]:
    """Indices of `names` in a fixed order by a hash of each name (one excerpt per work), so that
    cutting the list into test, validation and training puts no work in two of them. A salt
    keeps the order apart from other hashes of the same names (training.features.split_of)."""
    return sorted(range(len(names)), key=lambda i: hashlib.sha256((salt + names[i]).encode()).hexdigest())
