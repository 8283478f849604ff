"""Training throughput of the full-size model (Studio's architecture) in samples/s, and what
the input pipeline costs: the same fit with the model replaced by one that does almost nothing
measures feeding the data (slicing arrays, batching, packed targets and weights).

    .venv/bin/python bench/training.py [--samples 2048] [--epochs 3]

On a GPU machine, the same command measures the GPU (Keras picks it up).
"""

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import keras

    from training.contract import STEMS
    from training.features import FEATURE_DIM, MAX_STEPS, VALID_COLUMN
    from training.model import LevelLoss, ModelConfig, build_model, mean_levels, pack_targets

    rng = np.random.default_rng(0)
    features = rng.normal(size=(args.samples, MAX_STEPS, FEATURE_DIM)).astype(np.float32)
    features[:, :, VALID_COLUMN] = (np.arange(MAX_STEPS) < 60).astype(np.float32)  # 2-minute songs
    targets = rng.choice([-40.0, -12.0, -6.0], size=(args.samples, len(STEMS), MAX_STEPS)).astype(np.float32)
    weights = np.broadcast_to(features[:, None, :, VALID_COLUMN], targets.shape).astype(np.float32)
    y = pack_targets(targets, weights)
    config = dataclasses.replace(ModelConfig(), batch_size=args.batch_size)

    def epoch_times(model) -> list[float]:
        times = []
        for _ in range(args.epochs + 1):  # the first epoch compiles; not counted
            started = time.perf_counter()
            model.fit(features, y, batch_size=args.batch_size, epochs=1, verbose=0)
            times.append(time.perf_counter() - started)
        return times[1:]

    full = build_model(config, features, mean_levels(targets, weights))
    full_times = epoch_times(full)

    # The same inputs and outputs through a model with next to no compute.
    inputs = keras.Input(shape=(MAX_STEPS, FEATURE_DIM), name="stem_features")
    outputs = keras.layers.Permute((2, 1))(keras.layers.Dense(len(STEMS))(inputs))
    null = keras.Model(inputs, outputs)
    null.compile(optimizer="adam", loss=LevelLoss())
    null_times = epoch_times(null)

    full_median, null_median = float(np.median(full_times)), float(np.median(null_times))
    print(
        f"backend {keras.backend.backend()}, devices {keras.distribution.list_devices()}, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"
    )
    print(f"model: {full.count_params():,} parameters; {args.samples} samples, batch {args.batch_size}")
    print(f"full model:  median epoch {full_median:.2f} s -> {args.samples / full_median:,.0f} samples/s")
    print(
        f"input pipeline (null model): median epoch {null_median:.3f} s = "
        f"{100 * null_median / full_median:.1f}% of the full model's step time"
    )


if __name__ == "__main__":
    main()
