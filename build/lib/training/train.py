"""Training with per-epoch checkpoints that a run can resume from, on any worker.

Each epoch writes `last.keras` (model and optimizer state) and `state.json` (epoch, best
validation loss, early-stopping and plateau counters, learning rate, history) to the run
directory, and `best.weights.h5` when validation loss improves. Started again on the same
directory, training continues after the last finished epoch with the same counters; at the
end the best weights are restored (early stopping with restore-best semantics).
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras

from training.features import STEMS, Split
from training.metrics import Report, baseline_predictions, evaluate
from training.model import ModelConfig, as_targets, build_model, predict

LAST_CHECKPOINT = "last.keras"
BEST_WEIGHTS = "best.weights.h5"
STATE_FILE = "state.json"


@dataclass(frozen=True)
class EpochProgress:
    epoch: int  # 0-based
    loss: float
    val_loss: float
    learning_rate: float


@dataclass(frozen=True)
class TrainingResult:
    model: keras.Model
    history: list[dict]
    epochs_run: int
    stopped_early: bool
    resumed_from_epoch: int | None


class PlateauControl(keras.callbacks.Callback):
    """Early stopping and learning-rate reduction on a validation plateau, with the state
    checkpointed every epoch, plus progress reporting and cancellation."""

    def __init__(
        self,
        run_dir: Path,
        state: dict,
        config: ModelConfig,
        on_epoch: Callable[[EpochProgress], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        super().__init__()
        self.run_dir, self.state, self.config = run_dir, state, config
        self.on_epoch, self.should_stop = on_epoch, should_stop

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        state = self.state
        val_loss = float(logs["val_loss"])
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if val_loss < state["best_val_loss"]:
            state.update(best_val_loss=val_loss, best_epoch=epoch, wait=0, plateau_wait=0)
            self.model.save_weights(self.run_dir / BEST_WEIGHTS)
        else:
            state["wait"] += 1
            state["plateau_wait"] += 1
            if state["plateau_wait"] >= self.config.reduce_lr_patience:
                learning_rate = max(learning_rate * 0.5, 1e-6)
                self.model.optimizer.learning_rate = learning_rate
                state["plateau_wait"] = 0
        state["epoch"] = epoch
        state["history"].append(
            {"epoch": epoch, "loss": float(logs["loss"]), "val_loss": val_loss, "learning_rate": learning_rate}
        )
        if state["wait"] >= self.config.early_stopping_patience:
            state["stopped_early"] = True
            self.model.stop_training = True
        # Checkpoint: the model (with optimizer state) first, then the state that points at it.
        self.model.save(self.run_dir / LAST_CHECKPOINT)
        (self.run_dir / STATE_FILE).write_text(json.dumps(state))
        if self.on_epoch:
            self.on_epoch(EpochProgress(epoch, float(logs["loss"]), val_loss, learning_rate))
        if self.should_stop and self.should_stop():
            self.model.stop_training = True


def train(
    train_split: Split,
    validation: Split,
    config: ModelConfig,
    run_dir: Path,
    on_epoch: Callable[[EpochProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    seed: int = 0,
) -> TrainingResult:
    """Trains (or resumes training) in `run_dir`; returns the model with its best weights."""
    run_dir.mkdir(parents=True, exist_ok=True)
    state_file, checkpoint = run_dir / STATE_FILE, run_dir / LAST_CHECKPOINT
    resumed_from = None
    if state_file.exists() and checkpoint.exists():
        state = json.loads(state_file.read_text())
        model = keras.models.load_model(checkpoint)
        resumed_from = state["epoch"]
    else:
        keras.utils.set_random_seed(seed)
        state = {"epoch": -1, "best_val_loss": math.inf, "best_epoch": -1, "wait": 0, "plateau_wait": 0,
                 "stopped_early": False, "history": []}  # fmt: skip
        model = build_model(config, train_split.features)

    if not state["stopped_early"] and state["epoch"] + 1 < config.epochs:
        y, weights = as_targets(train_split.targets, train_split.masks)
        val_y, val_weights = as_targets(validation.targets, validation.masks)
        model.fit(
            train_split.features,
            y,
            sample_weight=weights,
            validation_data=(validation.features, val_y, val_weights),
            batch_size=config.batch_size,
            epochs=config.epochs,
            initial_epoch=state["epoch"] + 1,
            callbacks=[PlateauControl(run_dir, state, config, on_epoch, should_stop)],
            verbose=0,
        )
    if (run_dir / BEST_WEIGHTS).exists():
        model.load_weights(run_dir / BEST_WEIGHTS)
    return TrainingResult(model, state["history"], state["epoch"] + 1, state["stopped_early"], resumed_from)


def load_best_model(run_dir: Path) -> keras.Model:
    """A run's model (from its last checkpoint) with its best weights."""
    model = keras.models.load_model(run_dir / LAST_CHECKPOINT)
    model.load_weights(run_dir / BEST_WEIGHTS)
    return model


def evaluate_against_baselines(model: keras.Model, train_split: Split, validation: Split) -> dict[str, Report]:
    """Metrics of the model and of the trivial baselines, all on the same validation data."""
    predictions = {"model": predict(model, validation.features)}
    predictions |= baseline_predictions(train_split.targets, train_split.masks, len(validation))
    return {name: evaluate(validation.targets, p, validation.masks, STEMS) for name, p in predictions.items()}
