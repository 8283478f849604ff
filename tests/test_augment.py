"""Remixed training songs: each stem is some song's stem, scaled by one gain in range, silent in
whole sections only, and the new song makes a Studio snapshot whose ground truth is its stems."""

import numpy as np

from training.augment import GAIN_RANGE_DB, SECTION_SECONDS, remix
from training.contract import STEMS
from training.multitrack import Song, song_snapshot

RATE = 8000


def songs(count: int, seconds: float) -> list[Song]:
    rng = np.random.default_rng(0)
    length = int(seconds * RATE)
    return [
        Song(f"song-{i}", RATE, {stem: rng.normal(0, 0.1, (1, length + 100 * i)).astype(np.float32) for stem in STEMS})
        for i in range(count)
    ]


def test_each_stem_is_a_scaled_stem_of_one_song_muted_in_whole_sections():
    originals = songs(4, 12.0)
    made = remix(originals, np.random.default_rng(1), "remix-0")
    length = min(s.stems["vocals"].shape[1] for s in originals)
    section = int(SECTION_SECONDS * RATE)
    muted_any = False
    for stem, audio in made.stems.items():
        assert audio.shape == (1, length)
        playing = np.abs(audio[0]) > 0
        # Silent or playing over each whole section (the noise is never exactly 0).
        for start in range(0, length, section):
            part = playing[start : start + section]
            assert part.all() or not part.any(), stem
        muted_any |= not playing.all()
        sources = [s.stems[stem][:, :length] for s in originals]
        ratios = [np.median(audio[0][playing] / source[0][playing]) if playing.any() else None for source in sources]
        matches = [
            r
            for r, s in zip(ratios, sources, strict=True)
            if r is not None and np.allclose(audio[0][playing], r * s[0][playing], rtol=1e-4)
        ]
        if playing.any():
            assert len(matches) == 1, stem
            gain_db = 20 * np.log10(matches[0])
            assert GAIN_RANGE_DB[0] - 1e-3 <= gain_db <= GAIN_RANGE_DB[1] + 1e-3
    assert muted_any


def test_a_remix_makes_a_snapshot_with_its_stems_as_ground_truth():
    made = remix(songs(3, 6.0), np.random.default_rng(2), "remix-1")
    snapshot = song_snapshot(made)
    assert set(snapshot["groundTruthStems"]) <= set(STEMS) and snapshot["groundTruthStems"]
