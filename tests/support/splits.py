"""Small Splits with a known answer, for the gate and the candidates' tests."""

import numpy as np

from training.features import FEATURE_DIM, LEVEL_FLOOR_DB, MAX_STEPS, VALID_COLUMN, Split


def level_data(seed: int, count: int) -> Split:
    """Stems that play or rest step by step, with a feature that tells which, weakly."""
    rng = np.random.default_rng(seed)
    plays = rng.random((count, 6, MAX_STEPS)) < 0.6
    targets = np.where(plays, rng.uniform(-15, -3, plays.shape), LEVEL_FLOOR_DB)
    features = rng.normal(size=(count, MAX_STEPS, FEATURE_DIM))
    features[:, :, :6] += 1.5 * plays.transpose(0, 2, 1)
    features[:, :, VALID_COLUMN] = 1
    return Split(features.astype(np.float32), targets.astype(np.float32), np.ones_like(targets, dtype=np.float32))
