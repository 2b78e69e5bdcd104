"""Callbacks and log helpers of the training recipes (`kerapose train`,
examples/train_top_down.py): step decay, COCO AP during `fit`, best
checkpoint, resume bookkeeping."""

import bisect
import csv
import json
import math
from pathlib import Path

import keras


def step_schedule(base_lr, steps, factor=0.1):
    """Epoch-wise step decay, as the papers' (PyTorch `MultiStepLR`).

    The learning rate of 0-based epoch `e` is
    `base_lr * factor ** (number of steps <= e)`: with steps (170, 200),
    epochs 0-169 train at `base_lr`, 170-199 at `base_lr * factor` and
    200 on at `base_lr * factor ** 2`.

    Args:
        base_lr: float. Learning rate of the first epoch.
        steps: Epochs at which the rate drops.
        factor: float. Multiplier per step. Defaults to `0.1`.

    Returns:
        `schedule(epoch, lr=None) -> float`, for
        `keras.callbacks.LearningRateScheduler`.

    Why `LearningRateScheduler` rather than a `PiecewiseConstantDecay` on
    the optimizer's step count: the papers' boundaries are epochs, and the
    tf.data pipelines may drop unreadable images, so epochs x
    steps-per-epoch boundaries could drift from the epochs they stand for;
    the epoch index is exact, also after a resume (BackupAndRestore
    restores it), and the scheduler writes `learning_rate` into the logs.
    """
    steps = sorted(int(s) for s in steps)

    def schedule(epoch, lr=None):
        return float(base_lr * factor ** bisect.bisect_right(steps, epoch))

    return schedule


class EvalCallback(keras.callbacks.Callback):
    """COCO keypoint AP every `every_n_epochs` during `fit`, any task.

    Adds `val_AP`, `val_AP50`, ... (every metric `evaluate` returns but
    `num_predictions`) to the epoch logs, so the checkpoint and the CSV
    log see them.

    Args:
        evaluate: callable. `evaluate(model) -> dict` of metrics.
        every_n_epochs: int. Defaults to `1`.
        verbose: int. `0` prints nothing. Defaults to `1`.
    """

    def __init__(self, evaluate, every_n_epochs=1, verbose=1):
        super().__init__()
        self.evaluate = evaluate
        self.every_n_epochs = int(every_n_epochs)
        self.verbose = verbose
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        metrics = self.evaluate(self.model)
        self.history.append((epoch, metrics))
        if logs is not None:
            for name, value in metrics.items():
                if name != "num_predictions":
                    logs[f"val_{name}"] = value
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: COCO keypoint AP {metrics['AP']:.4f}")


class FillMissingMetrics(keras.callbacks.Callback):
    """NaN for the val_* metrics of epochs without an evaluation.

    `CSVLogger` fixes its columns at the first epoch; without this, a run
    that does not evaluate at epoch 1 would never log val_AP.

    Args:
        names: the log keys to fill, e.g. `["val_AP"]`.
    """

    def __init__(self, names):
        super().__init__()
        self.names = names

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name in self.names:
                logs.setdefault(name, float("nan"))


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """Best weights by `monitor`, saved only at epochs that measured it.

    Keras' `ModelCheckpoint(save_best_only=True)` saves when the monitored
    value is missing from the logs, which would overwrite the best weights
    at every epoch without an evaluation.

    Args:
        filepath: str. The `.weights.h5` file.
        monitor: str. Log key, larger is better (e.g. `"val_AP"`).
        initial_value_threshold: float or `None`. The best value so far
            (a resumed run's). Defaults to `None`.
        verbose: int. Defaults to `1`.
    """

    def __init__(
        self, filepath, monitor, initial_value_threshold=None, verbose=1
    ):
        super().__init__(
            filepath,
            monitor=monitor,
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=initial_value_threshold,
            verbose=verbose,
        )

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and not math.isnan(value):
            super().on_epoch_end(epoch, logs)


def best_logged(csv_file, monitor, before_epoch):
    """Best `monitor` in a CSV log, over epochs before `before_epoch`.

    Returns:
        float or `None` (no log, or no finite value).
    """
    best = None
    if not Path(csv_file).is_file():
        return best
    with open(csv_file, newline="") as f:
        for row in csv.DictReader(f):
            try:
                epoch, value = int(row["epoch"]), float(row.get(monitor))
            except (TypeError, ValueError):
                continue
            if epoch < before_epoch and not math.isnan(value):
                best = value if best is None else max(best, value)
    return best


def backup_epoch(out):
    """Next epoch of an interrupted run's BackupAndRestore, or `None`.

    Args:
        out: the run's folder (the backup is `out/backup`).
    """
    meta = Path(out) / "backup" / "training_metadata.json"
    if not meta.is_file():
        return None
    return int(json.loads(meta.read_text())["epoch"])
