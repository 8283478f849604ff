"""The run's predictor on real compositions, chosen and judged as a run does:

1. renders one 20 s excerpt of each of --songs works of music21's corpus (bench/corpus.py; kept
   for the next run) and makes each song's Studio snapshot (training/studio_snapshot.py), stems as
   ground truth;
2. splits the songs by work: --test songs (the level-error test split; their audio is halved by
   name into songs that decide which stems' gains apply and the held-out songs the audio figures
   come from), --validation songs (early stopping, ridge's penalty, the choice of candidate), and
   a training pool;
3. for each training-set size (the learning curve; every seed at --spread-size, the first seed
   at the others): fits ridge and trains each learned candidate on the first N songs of the pool, selects on validation, and hands the gate to ridge
   when the selected one does not beat it on test (training/candidates.py);
4. prints each candidate's validation and test level error, the predictor's margin over ridge per
   seed and over the seeds' per-song mean, with a bootstrap 95% interval over test songs;
5. with --augment K, trains again with K remixed songs (training/augment.py) per training song at
   each size in --augment-sizes, and keeps augmentation only where validation says so;
6. plays every candidate of the largest size (seed 0) on the test songs' audio, as a run with
   evaluation songs does: Studio's filter stems, with the candidate's gains, and with the
   ceiling's (the best per-step gains for the MDX SDR); half the songs select (the share of the
   ceiling's improvement recovered) and choose the stems to apply, the other half (held out) give
   each candidate's share and the share of songs each applied stem makes worse.

    .venv/bin/python bench/model_quality.py [--sizes 50,100,200,400,800] [--seeds 0,1,2] [--spread-size 400]
        [--candidates tiny,small,mlp] [--augment 1 --augment-sizes 100,400] [--json out.json]
"""

import argparse
import dataclasses
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import ROOT, SONGS_DIR, by_work, render_corpus  # noqa: E402


def augmented(folders: list[Path], per_song: int, seed: int):
    """`per_song` remixed songs per training song, as Studio snapshots, encoded."""
    from training.augment import remix
    from training.features import encode_split
    from training.multitrack import read_song, song_snapshot

    songs = [read_song(folder) for folder in folders]
    rng = np.random.default_rng(1000 + seed)
    made = [remix(songs, rng, f"remix-{i}") for i in range(per_song * len(songs))]
    return encode_split(song_snapshot(song) for song in made)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs-dir", type=Path, default=SONGS_DIR)
    parser.add_argument("--songs", type=int, default=1300)
    parser.add_argument("--test", type=int, default=120)
    parser.add_argument("--validation", type=int, default=100)
    parser.add_argument("--sizes", default="50,100,200,400,800")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--spread-size", type=int, default=400, help="the size every seed trains at; the others, the first seed")
    parser.add_argument("--candidates", default="tiny,small,mlp")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--augment", type=int, default=0, help="remixed songs per training song (0: none)")
    parser.add_argument("--augment-sizes", default="100,400")
    parser.add_argument("--no-audio", action="store_true", help="skip the audio judgement")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from training.audio_eval import AudioEvaluation, evaluate_song
    from training.candidates import RIDGE, choose, judge_candidates, load_candidates, train_candidates
    from training.features import FEATURE_VERSION, Split, encode_split
    from training.metrics import baseline_reports, paired_margin
    from training.model import predict
    from training.multitrack import read_song, song_snapshot

    timings: dict[str, float] = {}
    started = time.perf_counter()
    folders = render_corpus(args.songs_dir, args.songs)
    # Salted: the audio's halves are split_of(name), the very hash an unsalted order sorts by.
    folders = [folders[i] for i in by_work([f.name for f in folders], salt="model-quality:")]
    timings["render"] = time.perf_counter() - started
    started = time.perf_counter()
    key = hashlib.sha256("|".join([FEATURE_VERSION, *(f.name for f in folders)]).encode()).hexdigest()[:16]
    cache = args.songs_dir / f"encoded-{key}.npz"  # the snapshots of these songs, at this feature version
    if cache.exists():
        split = Split(**dict(np.load(cache)))
    else:
        split = encode_split(song_snapshot(read_song(folder)) for folder in folders)
        np.savez(cache, features=split.features, targets=split.targets, weights=split.weights, bounds=split.bounds)
    timings["snapshot and encode"] = time.perf_counter() - started
    n_test, n_validation = args.test, args.validation
    test, validation = split.rows(n_test), split.rows(n_test, n_test + n_validation)
    pool = split.rows(n_test + n_validation, len(folders))
    pool_folders = folders[n_test + n_validation :]
    sizes = [int(s) for s in args.sizes.split(",") if int(s) <= len(pool)]
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.candidates.split(",")
    print(
        f"{len(folders)} songs of real compositions ({args.songs_dir}): test {n_test}, validation {n_validation}, "
        f"training pool {len(pool)}; candidates {', '.join(names)} and ridge; seeds {seeds}; {args.epochs} epochs at most"
    )

    scratch = ROOT / "var" / "bench-model-quality" / "-".join(names)
    results: dict = {"sizes": {}, "augment": {}}
    fits: dict = {}

    def fit(train_split, label: str, seed: int):
        run_dir = scratch / label
        shutil.rmtree(run_dir, ignore_errors=True)
        tick = time.perf_counter()
        train_candidates(names, train_split, validation, run_dir, epochs=args.epochs, seed=seed)
        elapsed = time.perf_counter() - tick
        baselines = baseline_reports(train_split, validation, test)
        choice = choose(judge_candidates(load_candidates(run_dir, names), validation, test), baselines)
        return run_dir, choice, baselines, elapsed

    print(f"\n{'N':>5} {'seed':>4} " + "".join(f"{n + ' val/test':>16}" for n in [*names, RIDGE]) + "  selected -> predictor")
    for size in sizes:
        per_seed = []
        for seed in seeds if size == args.spread_size else seeds[:1]:
            _, choice, baselines, elapsed = fit(pool.rows(size), f"n{size}-s{seed}", seed)
            fits[(size, seed)] = (choice, baselines)
            figures = {c.name: (c.validation_error_db, c.test.level_error_db) for c in choice.candidates}
            print(
                f"{size:>5} {seed:>4} "
                + "".join(f"{figures[n][0]:>8.2f}{figures[n][1]:>8.2f}" for n in [*names, RIDGE])
                + f"  {choice.selected.name} -> {choice.predictor.name} ({elapsed:.0f} s)",
                flush=True,
            )
            ridge = next(c for c in choice.candidates if c.name == RIDGE)
            per_seed.append(
                {
                    "seed": seed,
                    "selected": choice.selected.name,
                    "predictor": choice.predictor.name,
                    "candidates": {n: list(v) for n, v in figures.items()},
                    # Per test song: the selected candidate's, the published predictor's and ridge's level error.
                    "selected_errors": np.asarray(choice.selected.test.per_snapshot),
                    "predictor_errors": np.asarray(choice.predictor.test.per_snapshot),
                    "ridge_errors": np.asarray(ridge.test.per_snapshot),
                    "baselines": {k: r.level_error_db for k, r in baselines.items()},
                    "seconds": elapsed,
                }
            )
        results["sizes"][size] = per_seed

    print("\nlearning curve: test level error, selected candidate minus ridge (dB; 95% interval over test songs)")
    for size, per_seed in results["sizes"].items():
        ridge_errors = per_seed[0]["ridge_errors"]  # ridge has no seed
        seed_margins = [paired_margin(s["selected_errors"], ridge_errors, RIDGE) for s in per_seed]
        pooled = paired_margin(np.mean([s["selected_errors"] for s in per_seed], axis=0), ridge_errors, RIDGE)
        published = paired_margin(np.mean([s["predictor_errors"] for s in per_seed], axis=0), ridge_errors, RIDGE)

        def shown(m) -> str:
            return f"{m.difference_db:+.2f} [{m.low_db:+.2f}, {m.high_db:+.2f}]"

        print(
            f"  N={size:>4}: per seed "
            + ", ".join(shown(m) for m in seed_margins)
            + f"; seeds' mean per song {shown(pooled)}"
            + f"; published predictor {shown(published)}"
            + f"; selected {', '.join(s['selected'] for s in per_seed)}; published {', '.join(s['predictor'] for s in per_seed)}"
        )

    if args.augment:
        print(f"\naugmentation: {args.augment} remixed song(s) per training song (validation decides)")
        for size in [int(s) for s in args.augment_sizes.split(",") if int(s) <= len(pool)]:
            tick = time.perf_counter()
            extra = augmented(pool_folders[:size], args.augment, seed=0)
            made = time.perf_counter() - tick
            _, choice, _, _ = fit(Split.concat(pool.rows(size), extra), f"n{size}-aug", 0)
            plain = results["sizes"].get(size, [{}])[0].get("candidates", {})
            rows = []
            for c in choice.candidates:
                before = plain.get(c.name, [float("nan")] * 2)
                rows.append(
                    f"{c.name} val {before[0]:.2f} -> {c.validation_error_db:.2f}, test {before[1]:.2f} -> {c.test.level_error_db:.2f}"
                )
            keep = choice.selected.validation_error_db < min(v[0] for v in plain.values()) if plain else None
            print(f"  N={size}: {'; '.join(rows)}; kept: {keep} ({len(extra)} remixes in {made:.0f} s)")
            results["augment"][size] = {
                "candidates": {c.name: [c.validation_error_db, c.test.level_error_db] for c in choice.candidates},
                "kept": keep,
            }

    audio = {}
    if not args.no_audio:
        # As a run with evaluation songs does: every candidate's gains on the songs, half of them
        # selecting (the share of the ceiling's SDR improvement) and choosing the stems to apply,
        # the other half the report.
        largest = sizes[-1]
        run_dir = scratch / f"n{largest}-s{seeds[0]}"
        level_choice, baselines = fits[(largest, seeds[0])]
        started = time.perf_counter()
        played = {}
        for name, model in load_candidates(run_dir, names).items():
            songs = [evaluate_song(read_song(folder), lambda f, m=model: predict(m, f)) for folder in folders[:n_test]]
            played[name] = AudioEvaluation(songs, []).split()
        heard = [
            dataclasses.replace(c, validation_audio_share=played[c.name][0].ceiling_share()) for c in level_choice.candidates
        ]
        audio_choice = choose(heard, baselines)
        print(f"\naudio (N={largest}, seed {seeds[0]}): {audio_choice.reason}; faces the gate: {audio_choice.predictor.name}")
        for name in [c.name for c in level_choice.candidates]:
            validation_songs, test_songs = played[name]
            applied = validation_songs.helpful_stems()
            held_out = test_songs.applied_only(applied)
            audio[name] = {"applied": applied, "held_out": held_out, "all_applied": test_songs}
            h = held_out.headline
            print(
                f"  {name}: {h['songs']} held-out songs, gains applied to {', '.join(applied) or 'no stem'} "
                f"(decided on {len(validation_songs.songs)} other songs): {h['sdr_ceiling_share']:.2f} "
                f"[{h['sdr_ceiling_share_low']:.2f}, {h['sdr_ceiling_share_high']:.2f}] of the ceiling's SDR improvement; "
                + ", ".join(
                    f"{stem} {f['sdr_ceiling_share']:.2f} (worse in {f['worse_share']:.2f})"
                    for stem, f in held_out.per_stem().items()
                    if stem in applied
                )
            )
        results["audio_choice"] = {"selected": audio_choice.selected.name, "predictor": audio_choice.predictor.name}
        timings["audio"] = time.perf_counter() - started
    print("\n" + "; ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    if args.json:

        def plain(value):
            if isinstance(value, np.ndarray):
                return value.tolist()
            if isinstance(value, dict):
                return {str(k): plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        results["audio"] = {
            name: {"applied": a["applied"], "held_out": a["held_out"].as_dict(), "all_applied": a["all_applied"].headline}
            for name, a in audio.items()
        }
        results["timings"] = timings
        args.json.write_text(json.dumps(plain(results), indent=2, default=float))


if __name__ == "__main__":
    main()
