"""New training songs from the stems of real ones, as music separation systems augment (Uhlich
et al. 2017; Open-Unmix): each stem taken from a random song of the set, played at a random gain,
and muted in whole sections, so the model sees mixtures no score wrote. The caller turns each new
song into Studio's snapshot (training/multitrack.song_snapshot), exactly what Studio would send.
"""

import numpy as np

from training.contract import STEMS
from training.multitrack import Song

GAIN_RANGE_DB = (-9.0, 3.0)
SECTION_SECONDS = 4.0
MUTED_SHARE = 0.2  # each stem is muted in about this share of sections


def remix(songs: list[Song], rng: np.random.Generator, name: str) -> Song:
    """A song whose stems come from random songs of `songs` (all at one sample rate), each at a
    random gain and muted in random whole sections; as long as the shortest stem drawn."""
    rates = {song.sample_rate for song in songs}
    if len(rates) != 1:
        raise ValueError(f"songs at several sample rates: {sorted(rates)}")
    rate = rates.pop()
    drawn = {}
    for stem in STEMS:
        having = [song for song in songs if stem in song.stems]
        if having:
            drawn[stem] = having[rng.integers(len(having))].stems[stem]
    length = min(audio.shape[1] for audio in drawn.values())
    section = int(SECTION_SECONDS * rate)
    stems = {}
    for stem, audio in drawn.items():
        gain = 10 ** (rng.uniform(*GAIN_RANGE_DB) / 20)
        sections = -(-length // section)
        playing = np.repeat(rng.random(sections) >= MUTED_SHARE, section)[:length]
        stems[stem] = (audio[:, :length] * gain * playing).astype(np.float32)
    return Song(name, rate, stems)
