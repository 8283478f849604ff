"""The learned predictors: the "quantum transformer" Studio runs, in three sizes, and a per-step
MLP; per-step features in, each stem's level over time out. A run trains the candidates it names
and publishes the one validation prefers (training/candidates.py).

Written with keras.layers and keras.ops only, so the same code trains on the TensorFlow, torch
or JAX backend (GPU workers may have torch or JAX with CUDA and no TensorFlow). The default
configuration is the one Studio's model follows (docs/contract.md): 4 encoder blocks of 8-head
self-attention, d_model 256, feed-forward 1024, residual + layer norm, the quantum activation.

Output `levels` [batch, 6, steps]: each stem's level relative to the mix in dB (features.py),
stems in STEMS order. The heads are linear, so they cannot die the way a saturated softplus
did: each starts at its stem's mean training level, and a linear path from the normalised
features adds to the transformer's output, so the model starts as a per-step linear model and
the encoder learns what context adds. Steps outside the track are masked out of attention.
"""

import dataclasses
from dataclasses import asdict, dataclass
from typing import Literal

import keras
import numpy as np
from keras import layers, ops

from training.contract import STEMS
from training.features import FEATURE_DIM, LEVEL_CEILING_DB, LEVEL_FLOOR_DB, MAX_STEPS, NO_BOUND, VALID_COLUMN, unbounded

INPUT_NAME = "stem_features"
OUTPUT_NAME = "levels"
DB_UNIT = 10.0  # the network works in units of 10 dB


@keras.saving.register_keras_serializable(package="prime_fabric")
def quantum_activation(x):
    """Studio's activation: 0.4 sigmoid(x) + 0.4 tanh(x) + 0.2 relu(x)."""
    return 0.4 * ops.sigmoid(x) + 0.4 * ops.tanh(x) + 0.2 * ops.relu(x)


@dataclass(frozen=True)
class ModelConfig:
    # "transformer": self-attention over the steps; "mlp": the same heads on each step alone
    # (blocks hidden layers of d_model units), no context beyond what the features carry.
    architecture: Literal["transformer", "mlp"] = "transformer"
    blocks: int = 4
    heads: int = 8
    d_model: int = 256
    feed_forward: int = 1024
    dropout: float = 0.1
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 50
    early_stopping_patience: int = 10
    reduce_lr_patience: int = 5
    # A bounded cell's weight against a known one in the loss, and how far inside its bound (dB)
    # a level must lie to cost nothing: chosen on validation by bench/corrections.py.
    correction_weight: float = 1.0
    correction_margin_db: float = 3.0

    def as_dict(self) -> dict:
        return asdict(self)


# For tests and demos on a CPU: seconds, not hours.
TINY = ModelConfig(
    blocks=1, heads=2, d_model=32, feed_forward=64, dropout=0.1, learning_rate=3e-3, batch_size=16, early_stopping_patience=15
)
# What a CPU trains in minutes on ~1,000 songs; better than tiny there on validation loss.
SMALL = dataclasses.replace(TINY, blocks=2, heads=4, d_model=64, feed_forward=256)
MLP = ModelConfig(
    architecture="mlp", blocks=2, d_model=128, dropout=0.1, learning_rate=3e-3, batch_size=16, early_stopping_patience=15
)
# Every learned candidate a run may train, each with its own hyperparameters.
CANDIDATES = {"full": ModelConfig(), "small": SMALL, "tiny": TINY, "mlp": MLP}


@keras.saving.register_keras_serializable(package="prime_fabric")
class PositionEmbedding(layers.Layer):
    """A learned vector per step, added to the projected features."""

    def __init__(self, length: int, width: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.length, self.width = length, width
        self.embedding = layers.Embedding(length, width)

    def build(self, input_shape) -> None:
        self.embedding.build((self.length,))
        super().build(input_shape)

    def call(self, inputs):
        return inputs + self.embedding(ops.arange(self.length))

    def get_config(self) -> dict:
        return {**super().get_config(), "length": self.length, "width": self.width}


@keras.saving.register_keras_serializable(package="prime_fabric")
class StepMask(layers.Layer):
    """[batch, steps, steps] attention mask from the input's step_valid column: every step
    attends to the steps inside the track."""

    def call(self, inputs):
        valid = ops.cast(inputs[:, :, VALID_COLUMN] > 0.5, "float32")
        return ops.cast(ops.expand_dims(ops.ones_like(valid), 2) * ops.expand_dims(valid, 1), "bool")


def encoder_block(x, mask, config: ModelConfig, index: int):
    attention = layers.MultiHeadAttention(
        num_heads=config.heads,
        key_dim=config.d_model // config.heads,
        dropout=config.dropout,
        name=f"block{index}_attention",
    )(x, x, attention_mask=mask)
    x = layers.LayerNormalization(epsilon=1e-6, name=f"block{index}_attention_norm")(
        x + layers.Dropout(config.dropout)(attention)
    )
    hidden = layers.Dense(config.feed_forward, activation=quantum_activation, name=f"block{index}_ff_in")(x)
    hidden = layers.Dense(config.d_model, name=f"block{index}_ff_out")(hidden)
    return layers.LayerNormalization(epsilon=1e-6, name=f"block{index}_ff_norm")(x + layers.Dropout(config.dropout)(hidden))


@keras.saving.register_keras_serializable(package="prime_fabric")
class LevelLoss(keras.losses.Loss):
    """Absolute error in units of 10 dB on the cells the ground truth knows (the metric the model
    is judged on: a level is often either the floor or near the mix, and the squared error's
    answer between the two is wrong both ways), plus how far a level lies outside the bounds
    users' corrections set (a level less than `correction_margin_db` inside its bound costs too,
    so held-out levels land inside, not on the edge), each bounded cell counting
    `correction_weight` of a known cell.
    y_true packs [target, weight, lower, upper] on its last axis (weight 0 = unknown cell).

    The mean is over the batch's cells, not over snapshots: a snapshot whose only label is a
    handful of corrected cells weighs by those cells, not as much as one with a whole known
    track (a mean per snapshot made corrections hurt: docs/decisions/corrections-as-bounds.md)."""

    def __init__(
        self, correction_weight: float = 1.0, correction_margin_db: float = 0.0, name: str = "level_loss", **kwargs
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.correction_weight = float(correction_weight)
        self.correction_margin_db = float(correction_margin_db)

    def call(self, y_true, y_pred):
        target, weight, lower, upper = y_true[..., 0], y_true[..., 1], y_true[..., 2], y_true[..., 3]
        error = ops.abs((y_pred - target) / DB_UNIT) * weight
        bounded = ops.cast(ops.logical_or(lower > NO_BOUND[0], upper < NO_BOUND[1]), y_pred.dtype) * self.correction_weight
        margin = self.correction_margin_db
        outside = (ops.relu(lower + margin - y_pred) + ops.relu(y_pred - upper + margin)) / DB_UNIT * bounded
        total = ops.sum(error, axis=(1, 2)) + ops.sum(outside, axis=(1, 2))
        # Keras averages what this returns over the batch: scaled so that average is per cell.
        batch = ops.cast(ops.shape(total)[0], total.dtype)
        return total * batch / ops.maximum(ops.sum(weight) + ops.sum(bounded), 1.0)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "correction_weight": self.correction_weight,
            "correction_margin_db": self.correction_margin_db,
        }


@keras.saving.register_keras_serializable(package="prime_fabric")
class StemLevelError(keras.metrics.Metric):
    """One stem's mean absolute level error (dB) over the known cells of an epoch."""

    def __init__(self, stem_index: int, **kwargs) -> None:
        super().__init__(name=kwargs.pop("name", f"{STEMS[stem_index]}_error_db"), **kwargs)
        self.stem_index = stem_index
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        target, weight = y_true[:, self.stem_index, :, 0], y_true[:, self.stem_index, :, 1]
        self.total.assign_add(ops.sum(ops.abs(y_pred[:, self.stem_index] - target) * weight))
        self.count.assign_add(ops.sum(weight))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)

    def reset_state(self) -> None:
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "stem_index": self.stem_index}


def mean_levels(targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each stem's mean level (dB) over the known cells [stems]; the floor where none are known."""
    total = (targets * weights).sum(axis=(0, 2))
    count = weights.sum(axis=(0, 2))
    return np.where(count > 0, total / np.maximum(count, 1), LEVEL_FLOOR_DB)


def build_model(config: ModelConfig, train_features: np.ndarray, start_levels: np.ndarray) -> keras.Model:
    """The model. `train_features` [n, steps, dim] adapt the input normalisation (over the steps
    inside tracks); `start_levels` [stems] (dB) are where the heads start."""
    rows = train_features.reshape(-1, FEATURE_DIM).astype(np.float64)
    rows = rows[rows[:, VALID_COLUMN] > 0.5] if (rows[:, VALID_COLUMN] > 0.5).any() else rows
    mean, variance = rows.mean(axis=0), rows.var(axis=0)
    # A column that never varies in training carries nothing; variance 1 keeps its scale finite.
    variance = np.where(variance < 1e-6, 1.0, variance)

    inputs = keras.Input(shape=(MAX_STEPS, FEATURE_DIM), name=INPUT_NAME)
    normalised = layers.Normalization(axis=-1, mean=mean, variance=variance, name="normalise")(inputs)
    x = layers.Dense(config.d_model, name="project")(normalised)
    if config.architecture == "transformer":
        mask = StepMask(name="step_mask")(inputs)
        x = PositionEmbedding(MAX_STEPS, config.d_model, name="position")(x)
        for index in range(config.blocks):
            x = encoder_block(x, mask, config, index)
    else:
        for index in range(config.blocks):
            x = layers.Dense(config.d_model, activation=quantum_activation, name=f"hidden{index}")(x)
            x = layers.Dropout(config.dropout)(x)
    heads = layers.Dense(
        len(STEMS),
        kernel_initializer=keras.initializers.GlorotUniform(),
        name="stem_heads",
        bias_initializer=keras.initializers.Constant(np.asarray(start_levels, dtype=np.float64) / DB_UNIT),
    )(x)
    linear = layers.Dense(len(STEMS), use_bias=False, kernel_initializer="zeros", name="linear_path")(normalised)
    levels = layers.Rescaling(DB_UNIT, name="to_db")(layers.Add(name="sum")([heads, linear]))
    outputs = layers.Permute((2, 1), name=OUTPUT_NAME)(levels)  # [batch, stems, steps]
    model = keras.Model(inputs, outputs, name="quantum_transformer" if config.architecture == "transformer" else "step_mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=LevelLoss(config.correction_weight, config.correction_margin_db),
        metrics=[StemLevelError(index) for index in range(len(STEMS))],
    )
    return model


def pack_targets(targets: np.ndarray, weights: np.ndarray, bounds: np.ndarray | None = None) -> np.ndarray:
    """[n, stems, steps] targets and weights, and [n, stems, steps, 2] bounds -> the
    [n, stems, steps, 4] y that level_loss reads."""
    bounds = unbounded(len(targets)) if bounds is None else bounds
    return np.concatenate([np.stack([targets, weights], axis=-1), bounds], axis=-1).astype(np.float32)


def predict(model: keras.Model, features: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """[n, stems, steps] levels in dB, clipped to the range the targets live in."""
    levels = np.asarray(model.predict(features, batch_size=batch_size, verbose=0))
    return np.clip(levels, LEVEL_FLOOR_DB, LEVEL_CEILING_DB)
