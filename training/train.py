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
import numpy as np

from training.contract import STEMS
from training.features import Split
from training.metrics import Report, baseline_reports, evaluate
from training.model import ModelConfig, build_model, mean_levels, pack_targets, predict

LAST_CHECKPOINT = "last.keras"
BEST_WEIGHTS = "best.weights.h5"
STATE_FILE = "state.json"
PUBLISHED_MODEL = "model.keras"  # a published model, beside its TF.js files


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


class CollapsedOutputError(RuntimeError):
    """A stem's output no longer varies while its targets do: training failed."""


# A stem whose predictions spread less than this while its targets spread more than
# COLLAPSE_TARGET_SPREAD_DB has collapsed to a constant.
COLLAPSE_SPREAD_DB = 0.05
COLLAPSE_TARGET_SPREAD_DB = 1.0


def check_not_collapsed(predictions: np.ndarray, split: Split) -> None:
    """Raises CollapsedOutputError naming every stem whose output is a constant."""
    collapsed = []
    for index, stem in enumerate(STEMS):
        known = split.weights[:, index] > 0
        if known.sum() < 2:
            continue
        spread, target_spread = predictions[:, index][known].std(), split.targets[:, index][known].std()
        if spread < COLLAPSE_SPREAD_DB and target_spread > COLLAPSE_TARGET_SPREAD_DB:
            collapsed.append(
                f"{stem} (always {predictions[:, index][known].mean():.1f} dB, spread {spread:.3f} dB "
                f"where the targets spread {target_spread:.1f} dB)"
            )
    if collapsed:
        raise CollapsedOutputError("the model's output collapsed to a constant for " + "; ".join(collapsed))


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
            | {f"{stem}_error_db": float(logs[f"{stem}_error_db"]) for stem in STEMS if f"{stem}_error_db" in logs}
            | {f"val_{stem}_error_db": float(logs[f"val_{stem}_error_db"]) for stem in STEMS if f"val_{stem}_error_db" in logs}
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
    """Trains (or resumes training) in `run_dir`; returns the model with its best weights.
    Raises CollapsedOutputError when a stem's output ends up a constant."""
    run_dir.mkdir(parents=True, exist_ok=True)
    state_file, checkpoint = run_dir / STATE_FILE, run_dir / LAST_CHECKPOINT
    resumed_from = None
    if state_file.exists() and checkpoint.exists():
        state = json.loads(state_file.read_text())
        model = keras.models.load_model(checkpoint)
        resumed_from = state["epoch"]
    else:
        _deterministic(seed)
        state = {
            "epoch": -1,
            "best_val_loss": math.inf,
            "best_epoch": -1,
            "wait": 0,
            "plateau_wait": 0,
            "stopped_early": False,
            "history": [],
        }
        model = build_model(config, train_split.features, mean_levels(train_split.targets, train_split.weights))

    if not state["stopped_early"] and state["epoch"] + 1 < config.epochs:
        model.fit(
            train_split.features,
            pack_targets(train_split.targets, train_split.weights, train_split.bounds),
            validation_data=(validation.features, pack_targets(validation.targets, validation.weights, validation.bounds)),
            batch_size=config.batch_size,
            epochs=config.epochs,
            initial_epoch=state["epoch"] + 1,
            callbacks=[PlateauControl(run_dir, state, config, on_epoch, should_stop)],
            verbose=0,
        )
    if (run_dir / BEST_WEIGHTS).exists():
        model.load_weights(run_dir / BEST_WEIGHTS)
    check_not_collapsed(
        predict(model, validation.features if len(validation) else train_split.features),
        validation if len(validation) else train_split,
    )
    return TrainingResult(model, state["history"], state["epoch"] + 1, state["stopped_early"], resumed_from)


def _deterministic(seed: int) -> None:
    """Same seed, same data, same machine: the same model (TensorFlow's multi-threaded kernels
    otherwise sum in varying order, and two runs of one seed drift apart by tenths of a dB)."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def load_best_model(run_dir: Path) -> keras.Model:
    """A run's model (from its last checkpoint) with its best weights."""
    model = keras.models.load_model(run_dir / LAST_CHECKPOINT)
    model.load_weights(run_dir / BEST_WEIGHTS)
    return model


def load_model(folder: Path) -> keras.Model:
    """A published model's folder (PUBLISHED_MODEL beside its TF.js files) or a candidate's
    checkpoint folder (its best weights)."""
    return keras.models.load_model(folder / PUBLISHED_MODEL) if (folder / PUBLISHED_MODEL).exists() else load_best_model(folder)


def evaluate_against_baselines(model: keras.Model, train_split: Split, validation: Split, test: Split) -> dict[str, Report]:
    """The model and every baseline, on the test split: nothing was selected on it (early
    stopping and the ridge penalty used the validation split)."""
    return {"model": evaluate(test, predict(model, test.features))} | baseline_reports(train_split, validation, test)
