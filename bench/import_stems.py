"""How fast `fabric import-stems` turns multitrack songs into Studio's snapshots (target: 20
songs of 3 minutes a minute on 2 CPUs). Renders --songs songs of --seconds at 44.1 kHz, stereo
WAV (kept in --songs-dir), then times the real command end to end (reading six stem files,
summing the mix, every stream, the ground truth, writing the JSON) and, in-process, where a
song's time goes.

    .venv/bin/python bench/import_stems.py [--songs 10] [--seconds 180]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--songs-dir", type=Path, default=ROOT / "var" / "bench-import-songs")
    args = parser.parse_args()

    from training.multitrack import read_song, song_folders, song_snapshot
    from training.render import render_song
    from training.studio_snapshot import studio_streams

    folder = args.songs_dir / f"{int(args.seconds)}s"
    for seed in range(args.songs):
        if not (folder / f"song-{30000 + seed:05d}").exists():
            render_song(folder, 30000 + seed, args.seconds, 44100)
    songs = song_folders(folder)[: args.songs]

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "fabric"), "import-stems", str(folder), "--out", out], check=True, capture_output=True
        )
        wall = time.perf_counter() - started
    reads, streams, whole = [], [], []
    for song_folder in songs:
        started = time.perf_counter()
        song = read_song(song_folder)
        reads.append(time.perf_counter() - started)
        mix = song.mix
        started = time.perf_counter()
        studio_streams(mix)
        streams.append(time.perf_counter() - started)
        started = time.perf_counter()
        song_snapshot(song)
        whole.append(time.perf_counter() - started + reads[-1])
    print(f"{len(songs)} songs of {args.seconds:.0f} s, 44.1 kHz stereo, six stems each")
    print(
        f"fabric import-stems --out, end to end: {wall:.1f} s = {60 * len(songs) / wall:.1f} songs a minute "
        f"(including the command's start-up)"
    )
    print(
        f"in-process, median per song: read {np.median(reads):.2f} s, Studio's streams {np.median(streams):.3f} s, "
        f"read + whole snapshot {np.median(whole):.2f} s = {60 / np.median(whole):.0f} songs a minute"
    )


if __name__ == "__main__":
    main()
