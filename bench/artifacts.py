"""The artifact store in a bucket: upload and download throughput, and what it adds to a
training run (a checkpoint pushed after every epoch), against a real S3-compatible server
process (moto's, on this machine: its Python server, not the network, bounds the figures).

    .venv/bin/python bench/artifacts.py [--model-size small] [--epochs 6] [--samples 512] [--rounds 5]

Throughput: a dataset-sized folder (float32 feature shards, --dataset-mb) and a run's checkpoint
folder, pushed from one machine's folder and pulled into another's; pulling a folder already in
step (a list, no transfer); streaming a file as the API serves it. Overhead: the same training
run (same seed, same data) with its checkpoint kept on local disk, and pushed after each epoch.
"""

import argparse
import asyncio
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.artifacts import ObjectStore, create_store  # noqa: E402
from app.config import Settings  # noqa: E402
from tests.support.servers import object_store_server  # noqa: E402


def store_for(env: dict, local_root: Path) -> ObjectStore:
    os.environ.update(env | {"FABRIC_ARTIFACTS_DIR": str(local_root)})
    return create_store(Settings(_env_file=None))


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name != ".store-sync.json") / 1e6


def throughput(env: dict, work: Path, key: str, rounds: int) -> dict:
    """Median MB/s of pushing local(key) whole, pulling it into a new machine's folder, and the
    median seconds of a pull with nothing to fetch."""
    source = store_for(env, work / "source")
    size = folder_mb(source.local(key))
    pushes, pulls, in_step = [], [], []
    for round_ in range(rounds):
        (source.local(key) / ".store-sync.json").unlink(missing_ok=True)  # send everything again
        started = time.perf_counter()
        source.push(key)
        pushes.append(size / (time.perf_counter() - started))
        target = store_for(env, work / f"target-{round_}")
        started = time.perf_counter()
        target.pull(key)
        pulls.append(size / (time.perf_counter() - started))
        started = time.perf_counter()
        target.pull(key)
        in_step.append(time.perf_counter() - started)
        shutil.rmtree(work / f"target-{round_}")
    return {
        "mb": size,
        "push": statistics.median(pushes),
        "pull": statistics.median(pulls),
        "in_step_s": statistics.median(in_step),
    }


def stream_mb_s(store: ObjectStore, key: str, rounds: int) -> float:
    async def read() -> int:
        size, chunks = await store.stream(key)
        async for _chunk in chunks:
            pass
        return size

    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        size = asyncio.run(read())
        rates.append(size / 1e6 / (time.perf_counter() - started))
    return statistics.median(rates)


def training_split(samples: int, seed: int):
    from training.contract import STEMS
    from training.features import FEATURE_DIM, MAX_STEPS, VALID_COLUMN, Split

    rng = np.random.default_rng(seed)
    features = rng.normal(size=(samples, MAX_STEPS, FEATURE_DIM)).astype(np.float32)
    features[:, :, VALID_COLUMN] = (np.arange(MAX_STEPS) < 60).astype(np.float32)
    levels = features[:, None, :, :6].mean(axis=-1) * 6 - 20  # learnable from the inputs
    targets = np.repeat(levels, len(STEMS), axis=1).astype(np.float32)
    weights = np.broadcast_to(features[:, None, :, VALID_COLUMN], targets.shape).astype(np.float32)
    return Split(features, targets, weights)


def training_seconds(env: dict | None, work: Path, args: argparse.Namespace) -> tuple[float, list[float]]:
    """Wall time of one training run, and the seconds each epoch's push took (with a store)."""
    from training.model import CANDIDATES
    from training.train import STATE_FILE, train

    config = dataclasses.replace(CANDIDATES[args.model_size], epochs=args.epochs, early_stopping_patience=args.epochs)
    train_split, validation = training_split(args.samples, 0), training_split(args.samples // 4, 1)
    store = store_for(env, work) if env else None
    run_dir = work / "runs" / "1"
    pushes: list[float] = []

    def on_epoch(_progress) -> None:
        started = time.perf_counter()
        store.push("runs/1", last=[STATE_FILE])
        pushes.append(time.perf_counter() - started)

    started = time.perf_counter()
    train(train_split, validation, config, run_dir, on_epoch=on_epoch if store else None)
    return time.perf_counter() - started, pushes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-size", default="small", choices=["tiny", "small", "full", "mlp"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dataset-mb", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with object_store_server() as env, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        training_seconds(None, work / "warm-up", argparse.Namespace(**{**vars(args), "epochs": 1}))  # the first fit builds graphs
        local_runs, store_runs, pushes = [], [], []
        for repeat in range(args.repeats):  # interleaved, so drift on a shared machine hits both
            local_runs.append(training_seconds(None, work / f"local-{repeat}", args)[0])
            seconds, pushed = training_seconds(env, work / f"bucket-{repeat}", args)
            store_runs.append(seconds)
            pushes += pushed
        local_s, store_s = statistics.median(local_runs), statistics.median(store_runs)
        checkpoint = work / "bucket-0" / "runs" / "1"
        print(f"training ({args.model_size}, {args.epochs} epochs, {args.samples} samples, medians of {args.repeats}):")
        print(f"  checkpoint on local disk: {local_s:.1f} s; pushed after every epoch: {store_s:.1f} s")
        print(
            f"  push per epoch: median {statistics.median(pushes) * 1000:.0f} ms for {folder_mb(checkpoint):.1f} MB "
            f"= {100 * sum(pushes) / sum(store_runs):.1f}% of the run's time ({100 * (store_s - local_s) / local_s:+.1f}% wall)"
        )

        dataset = store_for(env, work / "source").local("datasets/bench")
        dataset.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for shard in range(max(1, args.dataset_mb // 16)):  # 16 MB shards
            np.save(dataset / f"train-{shard:03d}.npy", rng.normal(size=(4 * 1024 * 1024,)).astype(np.float32))
        shutil.copytree(checkpoint, store_for(env, work / "source").local("runs/1"))
        for name, key in (("dataset", "datasets/bench"), ("checkpoint", "runs/1")):
            figures = throughput(env, work, key, args.rounds)
            print(
                f"{name} ({figures['mb']:.1f} MB): push {figures['push']:.0f} MB/s, pull into a new folder "
                f"{figures['pull']:.0f} MB/s, pull when in step {figures['in_step_s'] * 1000:.1f} ms (medians of {args.rounds})"
            )
        source = store_for(env, work / "source")
        print(
            f"stream one 16 MB file as the API serves it: {stream_mb_s(source, 'datasets/bench/train-000.npy', args.rounds):.0f} MB/s"
        )


if __name__ == "__main__":
    main()
