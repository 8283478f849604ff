"""The "quantum transformer" Studio runs: stem features in, one loudness envelope per stem out.

Written with keras.layers and keras.ops only, so the same code trains on the TensorFlow, torch
or JAX backend (GPU workers may have torch or JAX with CUDA and no TensorFlow). The default
configuration is the one Studio's model follows (CONTRACT.md): 4 encoder blocks of 8-head
self-attention, d_model 256, feed-forward 1024, residual + layer norm, the quantum activation,
six heads in the order vocals, drums, bass, harmonic, perc, sub.
"""

from dataclasses import asdict, dataclass, field

import keras
import numpy as np
from keras import layers, ops

from training.features import FEATURE_DIM, SEQUENCE_LENGTH, STEMS

INPUT_NAME = "stem_features"
ENVELOPE_SCALE = 0.1
# Musical role of each stem, for per-role loss weights.
STEM_ROLES = {
    "vocals": "melodic",
    "harmonic": "harmonic",
    "bass": "harmonic",
    "sub": "harmonic",
    "drums": "percussive",
    "perc": "percussive",
}


@keras.saving.register_keras_serializable(package="prime_fabric")
def quantum_activation(x):
    """Studio's activation: 0.4 sigmoid(x) + 0.4 tanh(x) + 0.2 relu(x)."""
    return 0.4 * ops.sigmoid(x) + 0.4 * ops.tanh(x) + 0.2 * ops.relu(x)


@dataclass(frozen=True)
class ModelConfig:
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
    role_loss_weights: dict[str, float] = field(
        default_factory=lambda: {"melodic": 1.0, "harmonic": 1.0, "percussive": 1.0}
    )

    def as_dict(self) -> dict:
        return asdict(self)


# For tests and demos on a CPU: seconds, not hours.
TINY = ModelConfig(blocks=1, heads=2, d_model=32, feed_forward=64, dropout=0.0, learning_rate=3e-3, batch_size=16)


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


def encoder_block(x, config: ModelConfig, index: int):
    attention = layers.MultiHeadAttention(
        num_heads=config.heads,
        key_dim=config.d_model // config.heads,
        dropout=config.dropout,
        name=f"block{index}_attention",
    )(x, x)
    x = layers.LayerNormalization(epsilon=1e-6, name=f"block{index}_attention_norm")(
        x + layers.Dropout(config.dropout)(attention)
    )
    hidden = layers.Dense(config.feed_forward, activation=quantum_activation, name=f"block{index}_ff_in")(x)
    hidden = layers.Dense(config.d_model, name=f"block{index}_ff_out")(hidden)
    return layers.LayerNormalization(epsilon=1e-6, name=f"block{index}_ff_norm")(x + layers.Dropout(config.dropout)(hidden))


def build_model(config: ModelConfig, train_features: np.ndarray | None = None) -> keras.Model:
    """The model; `train_features` [n, steps, dim] adapts its input normalisation."""
    inputs = keras.Input(shape=(SEQUENCE_LENGTH, FEATURE_DIM), name=INPUT_NAME)
    mean, variance = np.zeros(FEATURE_DIM), np.ones(FEATURE_DIM)
    if train_features is not None:
        rows = train_features.reshape(-1, FEATURE_DIM).astype(np.float64)
        mean, variance = rows.mean(axis=0), rows.var(axis=0)
        # A column that never varies in training carries nothing; variance 1 keeps its scale
        # finite (1/sqrt(0) folds to 1e7, which float16 weights turn into inf, then NaN).
        variance = np.where(variance < 1e-6, 1.0, variance)
    normalise = layers.Normalization(axis=-1, mean=mean, variance=variance, name="normalise")
    x = layers.Dense(config.d_model, name="project")(normalise(inputs))
    x = PositionEmbedding(SEQUENCE_LENGTH, config.d_model, name="position")(x)
    for index in range(config.blocks):
        x = encoder_block(x, config, index)
    outputs = {}
    for stem in STEMS:
        # softplus: an envelope is never negative. Envelopes are ~0.01-0.1, so the head works
        # in units of ENVELOPE_SCALE and starts near the data's scale instead of 7x above it.
        head = layers.Dense(1, activation="softplus", name=f"{stem}_head")(x)
        head = layers.Rescaling(ENVELOPE_SCALE, name=f"{stem}_scale")(head)
        outputs[stem] = layers.Reshape((SEQUENCE_LENGTH,), name=stem)(head)
    model = keras.Model(inputs, outputs, name="quantum_transformer")
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss={stem: "mse" for stem in STEMS},
        loss_weights={stem: config.role_loss_weights[STEM_ROLES[stem]] for stem in STEMS},
    )
    return model


def as_targets(targets: np.ndarray, masks: np.ndarray) -> tuple[dict, dict]:
    """[n, stems, steps] targets and [n, stems] masks -> Keras' per-output y and sample weights.
    A stem missing from a snapshot gets weight 0: it is left out of the loss, not trained
    towards zeros."""
    y = {stem: targets[:, index] for index, stem in enumerate(STEMS)}
    weights = {stem: masks[:, index].astype(np.float32) for index, stem in enumerate(STEMS)}
    return y, weights


def predict(model: keras.Model, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """[n, stems, steps] predictions, in STEMS order."""
    outputs = model.predict(features, batch_size=batch_size, verbose=0)
    return np.stack([np.asarray(outputs[stem]) for stem in STEMS], axis=1)
