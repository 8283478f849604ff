"""The stem model's quality, measured the way the gate and Studio see it, on songs played by
sampled instruments (training/render.py):

1. renders the development corpus (kept in --songs-dir for the next run) and a held-out set
   that nothing is developed or selected on (other seeds);
2. turns each development song into Studio's snapshot (as `fabric import-stems` does), splits
   them by id as datasets are (train / validation / test), trains the model;
3. prints the test split's level error beside every baseline and the gate's margin, with its
   bootstrap 95% interval;
4. judges the model on the held-out songs' audio (as `fabric evaluate --audio` does): Studio's
   filter stems alone, with the model's gains, with oracle gains; SIR and SDR per stem and the
   share of the oracle's SIR improvement that the model recovers;
5. prints the time each part took.

    .venv/bin/python bench/model_quality.py [--size small|tiny|full] [--seed 0] [--json out.json]

Rendering the default corpora takes ~25 minutes on 2 CPUs the first time; the rest ~15 (small).
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
# The development corpus: two batches (300 songs of 30-60 s, then 700 of 45 s), and the held-out set.
DEVELOPMENT = [(range(1000, 1300), lambda seed: 30.0 + (seed % 4) * 10), (range(1300, 2000), lambda seed: 45.0)]
HELD_OUT = (range(7000, 7060), lambda seed: 30.0 + (seed % 4) * 10)


def render(folder: Path, seeds: range, seconds) -> float:
    """Renders the songs not there yet; returns seconds spent per song rendered."""
    from training.render import render_song

    missing = [seed for seed in seeds if not (folder / f"song-{seed:05d}").exists()]
    started = time.perf_counter()
    for seed in missing:
        render_song(folder, seed, seconds(seed))
    return (time.perf_counter() - started) / max(len(missing), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs-dir", type=Path, default=ROOT / "var" / "bench-songs")
    parser.add_argument("--size", choices=("tiny", "small", "full"), default="small")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from training.audio_eval import evaluate_songs
    from training.features import SPLITS, build_splits
    from training.metrics import BASELINES, paired_margin, strongest_baseline
    from training.model import SIZES
    from training.multitrack import read_song, song_folders, song_snapshot
    from training.train import evaluate_against_baselines, train

    timings: dict[str, float] = {}
    development, held_out = args.songs_dir / "development", args.songs_dir / "held-out"
    for seeds, seconds in DEVELOPMENT:
        render(development, seeds, seconds)
    render(held_out, *HELD_OUT)

    started = time.perf_counter()
    folders = song_folders(development)
    splits = build_splits(song_snapshot(read_song(folder)) for folder in folders)
    timings["snapshot and encode, per song"] = (time.perf_counter() - started) / len(folders)

    config = dataclasses.replace(SIZES[args.size], epochs=args.epochs)
    run_dir = args.songs_dir / f"run-{args.size}-{args.seed}"
    started = time.perf_counter()
    result = train(splits["train"], splits["validation"], config, run_dir, seed=args.seed)
    timings["training"] = time.perf_counter() - started
    reports = evaluate_against_baselines(result.model, splits["train"], splits["validation"], splits["test"])
    reference = strongest_baseline(reports)
    margin = paired_margin(reports["model"].per_snapshot, reports[reference].per_snapshot, reference)

    print(
        f"development songs: {len(folders)} ({', '.join(f'{s} {len(splits[s])}' for s in SPLITS)}); "
        f"model {args.size}, seed {args.seed}, {result.epochs_run} epochs"
    )
    print(f"{'test split':14}{'level error dB':>16}{'present dB':>12}{'presence AUC':>14}{'false activity':>16}")
    for name in ("model", *BASELINES):
        r = reports[name]
        print(f"{name:14}{r.level_error_db:>16.2f}{r.present_error_db:>12.2f}{r.presence_auc:>14.3f}{r.false_activity:>16.3f}")
    print(
        f"model - {reference}: {margin.difference_db:+.2f} dB, 95% interval [{margin.low_db:+.2f}, {margin.high_db:+.2f}] "
        f"over {margin.snapshots} test songs -> {'published' if margin.significant_win else 'rejected'}"
    )

    started = time.perf_counter()
    audio = evaluate_songs(result.model, held_out)
    timings["audio evaluation, per song"] = (time.perf_counter() - started) / max(len(audio.songs), 1)
    print(f"\nheld-out songs (seeds {HELD_OUT[0].start}-{HELD_OUT[0].stop - 1}), BSS-Eval against the true stems:")
    print(audio.summary())
    print("\n" + "; ".join(f"{name} {value:.2f} s" for name, value in timings.items()))
    if args.json:
        figures = {
            "reports": {name: dataclasses.asdict(r) for name, r in reports.items()},
            "margin": dataclasses.asdict(margin),
            "audio": audio.as_dict(),
            "timings": timings,
            "history": result.history,
        }
        args.json.write_text(json.dumps(figures, indent=2, default=float))


if __name__ == "__main__":
    main()
