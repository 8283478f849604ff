"""Do users' corrections teach? Held-out figures of models trained with and without
corrections-only snapshots, on real compositions (training/compositions.py) with Studio-identical
snapshots (training/studio_snapshot.py) and simulated users (training/simulated_users.py):

1. renders one 20 s excerpt of each of the first --songs works of music21's corpus (kept in
   --songs-dir for the next run) and makes each song's snapshot, stems as ground truth;
2. splits the songs by work: test (ground truth and a truthful user's corrections: the held-out
   figures), validation (the same: early stopping, the correction weight and margin), a fixed training
   set with ground truth, and a pool whose ground truth is removed and replaced by a simulated
   user's corrections (1-5 each, ranges of 1-6 s);
3. trains the tiny model on the fixed set plus M = 0, 100, 250, 500 corrections-only snapshots,
   with truthful users and with noisy ones (ranges off by up to 1 s, one correction in ten
   backwards), over --seeds seeds;
4. prints, per case, held-out level error and held-out corrections obeyed (the share of bounded
   cells the predicted level obeys), and the paired difference against M = 0 with a bootstrap
   95% interval over test songs (each song's figure averaged over the seeds), beside the
   baselines on the same test songs.

    .venv/bin/python bench/corrections.py [--seeds 5] [--select-weights 0.3,1,3 --select-margins 0,3]
                                          [--json out.json]

With --select-weights and --select-margins it first trains the middle M (250; truthful) with each
pair of correction weight and margin (--select-seeds seeds each) and prints their validation
figures; the cases then use the pair whose levels lie closest to what validation's labels say
(targets and bounds, one scale for all pairs; without them, ModelConfig's correction_weight and
correction_margin_db).
"""

import argparse
import dataclasses
import json
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import ROOT, SONGS_DIR, by_work, render_corpus  # noqa: E402


def songs_with_corrections(folders: list[Path]) -> list[dict]:
    """Each song's snapshot (ground truth) and what a truthful and a noisy user would correct."""
    from training.multitrack import read_song, song_snapshot
    from training.simulated_users import NOISY, TRUTHFUL, simulate_corrections

    songs = []
    for index, folder in enumerate(folders):
        song = read_song(folder)
        songs.append(
            {
                "name": folder.name,
                "snapshot": song_snapshot(song),
                "truthful": simulate_corrections(song.stems, song.sample_rate, np.random.default_rng(index), TRUTHFUL),
                "noisy": simulate_corrections(song.stems, song.sample_rate, np.random.default_rng(index), NOISY),
            }
        )
    return songs


def encode(songs: list[dict], user: str | None, keep_truth: bool):
    """A Split of these songs with `user`'s corrections (None: none), with or without truth."""
    from training.features import Split, encode_split

    split = encode_split(dict(song["snapshot"], userCorrections=song[user] if user else []) for song in songs)
    return split if keep_truth else Split(split.features, split.targets, np.zeros_like(split.weights), split.bounds)


def yardstick(split, predictions: np.ndarray) -> float:
    """What a candidate's loss measures, on one scale for every weight and margin: the mean over
    known and bounded cells of the level's distance from its target or outside its bound (dB)."""
    known, bounded = split.weights > 0, split.bounded
    outside = np.maximum(split.bounds[..., 0] - predictions, 0) + np.maximum(predictions - split.bounds[..., 1], 0)
    return float((np.abs(predictions - split.targets)[known].sum() + outside[bounded].sum()) / (known.sum() + bounded.sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs-dir", type=Path, default=SONGS_DIR)
    parser.add_argument("--songs", type=int, default=820)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--test", type=int, default=120)
    parser.add_argument("--validation", type=int, default=80)
    parser.add_argument("--with-truth", type=int, default=80)
    parser.add_argument("--pool-sizes", default="0,100,250,500")
    parser.add_argument("--select-weights", default="")
    parser.add_argument("--select-margins", default="")
    parser.add_argument("--select-seeds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from training.features import Split
    from training.metrics import baseline_reports, evaluate, paired_margin
    from training.model import TINY, predict
    from training.train import train

    started = time.perf_counter()
    folders = render_corpus(args.songs_dir, args.songs)
    rendered = time.perf_counter()
    songs = songs_with_corrections(folders)
    # Split by work (one excerpt per work), by a hash of its name: no work is in two splits.
    songs = [songs[i] for i in by_work([song["name"] for song in songs])]
    pool_sizes = [int(m) for m in args.pool_sizes.split(",")]
    cut = np.cumsum([args.test, args.validation, args.with_truth])
    test, validation, with_truth, pool = songs[: cut[0]], songs[cut[0] : cut[1]], songs[cut[1] : cut[2]], songs[cut[2] :]
    if len(pool) < max(pool_sizes):
        raise SystemExit(f"{len(songs)} songs: the pool needs {max(pool_sizes)}; raise --songs")
    test_split, validation_split = encode(test, "truthful", True), encode(validation, "truthful", True)
    truth_split = encode(with_truth, None, True)
    pools = {user: encode(pool, user, False) for user in ("truthful", "noisy")}
    encoded = time.perf_counter()
    bounded_cells = {user: int(split.bounded.sum()) for user, split in pools.items()}
    truth_obeys = {
        user: float(evaluate(encode(pool, user, True), encode(pool, None, True).targets).corrections_met) for user in pools
    }
    print(
        f"{len(songs)} songs of real compositions: test {len(test)}, validation {len(validation)}, "
        f"with ground truth {len(with_truth)}, corrections-only pool {len(pool)}; "
        f"pool bounded cells {bounded_cells}; the truth obeys its users' bounds {truth_obeys}"
    )

    baselines = baseline_reports(truth_split, validation_split, test_split)

    def fit(m: int, user: str, seed: int, weight: float, margin: float):
        config = dataclasses.replace(TINY, epochs=args.epochs, correction_weight=weight, correction_margin_db=margin)
        train_split = Split.concat(truth_split, pools[user].rows(m))
        scratch = ROOT / "var" / "bench-corrections" / f"{user}-{m}-{seed}-{weight}-{margin}"
        shutil.rmtree(scratch, ignore_errors=True)
        model = train(train_split, validation_split, config, scratch, seed=seed).model
        on_validation = predict(model, validation_split.features)
        return (
            evaluate(test_split, predict(model, test_split.features)),
            evaluate(validation_split, on_validation),
            yardstick(validation_split, on_validation),
        )

    weights = [float(w) for w in args.select_weights.split(",") if w] or [TINY.correction_weight]
    margins = [float(m) for m in args.select_margins.split(",") if m] or [TINY.correction_margin_db]
    candidates = [(w, m) for w in weights for m in margins] if len(weights) * len(margins) > 1 else []
    selection = {}
    for weight, margin in candidates:
        fits = [fit(pool_sizes[len(pool_sizes) // 2], "truthful", seed, weight, margin) for seed in range(args.select_seeds)]
        figures = {
            "level_error_db": float(np.mean([v.level_error_db for _, v, _ in fits])),
            "corrections_met": float(np.mean([v.corrections_met for _, v, _ in fits])),
            "yardstick_db": float(np.mean([y for _, _, y in fits])),
        }
        selection[f"weight {weight}, margin {margin} dB"] = figures | {"weight": weight, "margin": margin}
        print(
            f"  weight {weight}, margin {margin} dB: validation level error {figures['level_error_db']:.3f} dB, "
            f"obeyed {figures['corrections_met']:.3f}, distance from target or bound {figures['yardstick_db']:.3f} dB"
        )

    # The pair validation picks, on what both labels say (the yardstick), else the model's own.
    best = min(selection.values(), key=lambda f: f["yardstick_db"]) if selection else None
    chosen = (best["weight"], best["margin"]) if best else (TINY.correction_weight, TINY.correction_margin_db)
    print(f"correction weight {chosen[0]}, margin {chosen[1]} dB")
    cases = [("truthful", m) for m in pool_sizes] + [("noisy", m) for m in pool_sizes[len(pool_sizes) // 2 :] if m]
    results, on_validation = {}, {}
    for user, m in cases:
        fits = [fit(m, user, seed, *chosen) for seed in range(args.seeds)]
        results[(user, m)] = [on_test for on_test, _, _ in fits]
        on_validation[(user, m)] = [v for _, v, _ in fits]
    trained = time.perf_counter()

    def per_song(reports, field: str) -> np.ndarray:
        values = np.array([getattr(r, field) for r in reports], dtype=np.float64)
        with warnings.catch_warnings():  # a song with no known or no bounded cell stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(values, axis=0)

    reference = results[("truthful", 0)]
    print(
        f"\nHeld-out ({len(test)} test songs), tiny model, {args.seeds} seeds; differences against M = 0, paired, 95% bootstrap"
    )
    print(
        f"{'users':9} {'M':>4} {'level error dB':>15} {'difference [interval]':>26} {'obeyed':>7} {'difference [interval]':>26}  seeds' level errors"
    )
    table = []
    for (user, m), reports in results.items():
        error, met = per_song(reports, "per_snapshot"), per_song(reports, "corrections_met_per_snapshot")
        error_margin = paired_margin(error, per_song(reference, "per_snapshot"), "M=0")
        met_margin = paired_margin(met, per_song(reference, "corrections_met_per_snapshot"), "M=0")
        row = {
            "users": user,
            "m": m,
            "level_error_db": float(np.nanmean(error)),
            "level_error_difference": dataclasses.asdict(error_margin),
            "corrections_met": float(np.nanmean(met)),
            "corrections_met_difference": dataclasses.asdict(met_margin),
            "seeds_level_error_db": [r.level_error_db for r in reports],
            "seeds_corrections_met": [r.corrections_met for r in reports],
            "validation_level_error_db": float(np.mean([r.level_error_db for r in on_validation[(user, m)]])),
            "validation_corrections_met": float(np.mean([r.corrections_met for r in on_validation[(user, m)]])),
        }
        table.append(row)
        print(
            f"{user:9} {m:>4} {row['level_error_db']:>15.3f} "
            f"{error_margin.difference_db:>+8.3f} [{error_margin.low_db:+.3f}, {error_margin.high_db:+.3f}] "
            f"{row['corrections_met']:>7.3f} {met_margin.difference_db:>+8.3f} [{met_margin.low_db:+.3f}, {met_margin.high_db:+.3f}]  "
            + " ".join(f"{v:.3f}" for v in row["seeds_level_error_db"])
            + f"  validation {row['validation_level_error_db']:.3f} dB, obeyed {row['validation_corrections_met']:.3f}"
        )
    print(
        "baselines on the same test songs (fitted on the ground-truth set): "
        + ", ".join(
            f"{name} {report.level_error_db:.3f} dB (obeyed {report.corrections_met:.3f})" for name, report in baselines.items()
        )
    )
    print(
        f"time: render {rendered - started:.0f} s, snapshots and users {encoded - rendered:.0f} s, "
        f"training {trained - encoded:.0f} s ({len(cases) * args.seeds + len(candidates) * args.select_seeds} models)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "cases": table,
                    "weight_selection": selection,
                    "correction_weight": chosen[0],
                    "correction_margin_db": chosen[1],
                    "truth_obeys": truth_obeys,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
