"""Trains a top-down pose estimator with the HRNet paper recipe.

The defaults are the COCO recipe of the HRNet paper (Sun et al., CVPR 2019)
and its official config `w32_256x192_adam_lr1e-3.yaml`: HRNet-W32 at
256x192, Adam with learning rate 1e-3, dropped x0.1 at epochs 170 and 200,
210 epochs, the official augmentation (kerapose's `AugmentConfig()`) and
flip test at evaluation. The official run uses 32 crops per GPU on 4 GPUs;
`--batch-size` is the global batch of this single-process run.

It is plain `model.fit` with Keras callbacks, so it runs on the TensorFlow,
JAX and PyTorch backends (`KERAS_BACKEND=...`); the input pipeline is
tf.data in every case. Everything goes under `--out`:

    config.json          the TrainConfig of the run
    log.csv              one row per epoch (loss, learning_rate, val_AP...)
    tensorboard/         TensorBoard event files (`tensorboard --logdir`)
    best.weights.h5      best weights by val_AP (when evaluation runs)
    last.weights.h5      final weights (each epoch when nothing evaluates)
    backup/              BackupAndRestore state; deleted after a full run
    final_metrics.json   COCO AP of the final model and the best val_AP

Load a checkpoint with `model.load_weights(path)` on a model from
`kerapose.zoo.load(name, input_shape=..., num_keypoints=...)`.

On several GPUs with TensorFlow, call `main(argv)` inside
`tf.distribute.MirroredStrategy().scope()`: the model is built in that
scope, `--batch-size` stays the global batch, and BatchNorm is
synchronised across the replicas (`sync_batchnorm`), as the official
multi-GPU runs do.

An interrupted run resumes where it stopped: start it again with the same
`--out` (and arguments) and `BackupAndRestore` restores the weights,
the optimizer state and the epoch.

    # COCO, the paper recipe
    python examples/train_top_down.py \\
        --train-ann coco/annotations/person_keypoints_train2017.json \\
        --train-images coco/train2017 \\
        --val-ann coco/annotations/person_keypoints_val2017.json \\
        --val-images coco/val2017 \\
        --det-file COCO_val2017_detections_AP_H_56_person.json \\
        --out runs/hrnet_w32_256x192

    # a smoke run on synthetic data, about a minute on a CPU
    python examples/train_top_down.py --model test_hrnet --input-size 64 64 \\
        --synthetic 32 --epochs 2 --batch-size 8 --run-eagerly \\
        --out runs/smoke
"""

import argparse
import bisect
import csv
import dataclasses
import importlib.util
import json
import math
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from kerapose import zoo  # noqa: E402
from kerapose.data.pipelines import build_top_down_dataset  # noqa: E402
from kerapose.data.synthetic import write_synthetic_coco  # noqa: E402
from kerapose.eval.top_down import COCOEvalCallback  # noqa: E402
from kerapose.eval.top_down import evaluate_top_down  # noqa: E402

VAL_METRICS = ("AP", "AP50", "AP75", "APM", "APL", "AR")


@dataclasses.dataclass
class TrainConfig:
    """One training run; the defaults are the HRNet paper's COCO recipe.

    Attributes:
        model: Zoo architecture name, e.g. `"hrnet_w32"` or `"test_hrnet"`.
        train_ann: COCO keypoint JSON to train on. `None` with `synthetic`
            writes a synthetic set under `out/data`.
        train_images: Folder of the training images.
        val_ann: COCO keypoint JSON to evaluate on; `None` skips evaluation
            (unless the synthetic set provides one).
        val_images: Folder of the validation images.
        det_file: Person detections for evaluation (COCO results JSON);
            `None` uses the ground-truth boxes. The paper's numbers use the
            detector with person AP 56.4 on COCO val2017.
        input_size: `(H, W)` of the network input.
        batch_size: Global batch size.
        lr: Base learning rate of Adam.
        lr_steps: Epochs (0-based) from which the learning rate is
            multiplied by another `lr_factor`.
        lr_factor: Decay factor at each of `lr_steps`.
        epochs: Total number of epochs.
        flip_test: Average with mirrored crops at evaluation.
        eval_every: Evaluate COCO AP every this many epochs; `0` never
            during training (the final evaluation still runs).
        out: Output folder (checkpoints, logs, backup).
        seed: Seed of Keras and of the data pipeline.
        synthetic: Number of synthetic training images to write when
            `train_ann` is `None`; the validation split gets a quarter.
        steps_per_epoch: Batches per epoch; `None` is one pass over the
            training set. Set it for smoke runs.
        verbose: `model.fit` verbosity: 1 progress bars, 2 one line per
            epoch, 0 silent.
        run_eagerly: Run the train and predict steps eagerly. For
            debugging and for smoke runs of a few steps, where compiling
            the step graph (tens of seconds for an HRNet on a CPU) costs
            more than the run itself.
    """

    model: str = "hrnet_w32"
    train_ann: str | None = None
    train_images: str | None = None
    val_ann: str | None = None
    val_images: str | None = None
    det_file: str | None = None
    input_size: tuple = (256, 192)
    batch_size: int = 32
    lr: float = 1e-3
    lr_steps: tuple = (170, 200)
    lr_factor: float = 0.1
    epochs: int = 210
    flip_test: bool = True
    eval_every: int = 1
    out: str = "runs/train_top_down"
    seed: int = 0
    synthetic: int = 0
    steps_per_epoch: int | None = None
    verbose: int = 1
    run_eagerly: bool = False


def parse_args(argv=None) -> TrainConfig:
    """Command-line arguments -> `TrainConfig`; every field can be set."""
    d = TrainConfig()
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    flag = p.add_argument
    flag("--model", default=d.model, help="zoo architecture")
    flag("--train-ann", default=d.train_ann, help="COCO keypoint JSON")
    flag("--train-images", default=d.train_images, help="image folder")
    flag("--val-ann", default=d.val_ann, help="COCO keypoint JSON")
    flag("--val-images", default=d.val_images, help="image folder")
    flag(
        "--det-file",
        default=d.det_file,
        help="person detections for evaluation (None: GT boxes)",
    )
    flag(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=d.input_size,
        help="network input",
    )
    flag("--batch-size", type=int, default=d.batch_size, help="global batch")
    flag("--lr", type=float, default=d.lr, help="Adam learning rate")
    flag(
        "--lr-steps",
        type=int,
        nargs="*",
        default=d.lr_steps,
        help="0-based epochs where the rate drops",
    )
    flag("--lr-factor", type=float, default=d.lr_factor, help="drop factor")
    flag("--epochs", type=int, default=d.epochs, help="total epochs")
    flag(
        "--flip-test",
        action=argparse.BooleanOptionalAction,
        default=d.flip_test,
        help="flip test at evaluation",
    )
    flag(
        "--eval-every",
        type=int,
        default=d.eval_every,
        help="COCO AP every N epochs (0: only at the end)",
    )
    flag("--out", default=d.out, help="output folder; rerun to resume")
    flag("--seed", type=int, default=d.seed, help="random seed")
    flag(
        "--synthetic",
        type=int,
        default=d.synthetic,
        help="without --train-ann: write N synthetic images",
    )
    flag(
        "--steps-per-epoch",
        type=int,
        default=d.steps_per_epoch,
        help="batches per epoch (None: one pass)",
    )
    flag("--verbose", type=int, default=d.verbose, help="fit verbosity")
    flag(
        "--run-eagerly",
        action=argparse.BooleanOptionalAction,
        default=d.run_eagerly,
        help="no compiled step (debugging, smoke runs)",
    )
    args = vars(p.parse_args(argv))
    for key in ("input_size", "lr_steps"):
        args[key] = tuple(args[key])
    return TrainConfig(**args)


def step_schedule(base_lr, steps, factor=0.1):
    """Epoch-wise step decay, as the paper (PyTorch `MultiStepLR`).

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
    the optimizer's step count: the paper's boundaries are epochs, and the
    tf.data pipeline has no fixed length (it drops unreadable images, so
    its cardinality is unknown), so epochs x steps-per-epoch boundaries
    could drift from the epochs they stand for; the epoch index is exact,
    also after a resume (BackupAndRestore restores it), and the scheduler
    writes `learning_rate` into the logs (CSV and TensorBoard).
    """
    steps = sorted(int(s) for s in steps)

    def schedule(epoch, lr=None):
        return float(base_lr * factor ** bisect.bisect_right(steps, epoch))

    return schedule


class _FillMissingMetrics(keras.callbacks.Callback):
    """NaN for the val_* metrics of epochs without an evaluation.

    `CSVLogger` fixes its columns at the first epoch; without this, a run
    that does not evaluate at epoch 1 would never log val_AP.
    """

    def __init__(self, names):
        super().__init__()
        self.names = names

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name in self.names:
                logs.setdefault(name, float("nan"))


class _BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """Best weights by `monitor`, saved only at epochs that measured it.

    Keras' `ModelCheckpoint(save_best_only=True)` saves when the monitored
    value is missing from the logs, which would overwrite the best weights
    at every epoch without an evaluation.
    """

    def __init__(self, filepath, monitor, initial_value_threshold=None):
        super().__init__(
            filepath,
            monitor=monitor,
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=initial_value_threshold,
            verbose=1,
        )

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and not math.isnan(value):
            super().on_epoch_end(epoch, logs)


class _CoreSummary:
    """`tf.summary`, with `scalar` written through core `tf.summary.write`.

    `tf.summary.scalar` lives in the `tensorboard` package, which
    tensorflow-cpu does not install; this writes the same scalar events
    (plugin "scalars"), so TensorBoard shows them all the same.
    """

    def __getattr__(self, name):
        import tensorflow as tf

        return getattr(tf.summary, name)

    def scalar(self, name, data, step=None, description=None):
        import tensorflow as tf

        metadata = tf.compat.v1.SummaryMetadata()
        metadata.plugin_data.plugin_name = "scalars"
        return tf.summary.write(
            name, tf.cast(data, tf.float32), step=step, metadata=metadata
        )


class _TensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, also without the `tensorboard` package.

    Epoch scalars only (no graph, histograms or profiling), on every
    backend: the events are written by TensorFlow, which the data pipeline
    needs anyway.
    """

    def __init__(self, log_dir):
        super().__init__(log_dir=log_dir, write_graph=False)

    @property
    def summary(self):
        if self._summary_module is None:
            if importlib.util.find_spec("tensorboard") is None:
                self._summary_module = _CoreSummary()
            else:
                import tensorflow as tf

                self._summary_module = tf.summary
        return self._summary_module


def _best_logged(csv_file, monitor, before_epoch):
    """Best `monitor` in a CSV log, over epochs before `before_epoch`."""
    best = None
    if not csv_file.is_file():
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


def _resolve_data(cfg, out):
    """Annotation files and image folders, writing synthetic ones if asked."""
    train = (cfg.train_ann, cfg.train_images)
    val = (cfg.val_ann, cfg.val_images)
    if cfg.train_ann is None:
        if cfg.synthetic <= 0:
            raise ValueError(
                "No training data: pass --train-ann and --train-images, or "
                "--synthetic N to write a synthetic COCO-format set."
            )
        data = out / "data"
        # Deterministic in the seed, so a resumed run rewrites the same set.
        ann = write_synthetic_coco(
            data, num_images=cfg.synthetic, seed=cfg.seed, split="train"
        )
        train = (str(ann), str(data / "images"))
        if cfg.val_ann is None:
            ann = write_synthetic_coco(
                data,
                num_images=max(cfg.synthetic // 4, 4),
                seed=cfg.seed,
                split="val",
            )
            val = (str(ann), str(data / "images"))
    for name, (ann, images) in (("train", train), ("val", val)):
        if ann is not None and images is None:
            raise ValueError(f"--{name}-ann needs --{name}-images.")
    return train, (val if val[0] is not None else None)


def build_callbacks(cfg, out, val, resume_epoch):
    """The callbacks of `fit`, in the order they must run.

    Evaluation comes first so that the checkpoint, TensorBoard and the CSV
    log see val_AP in the epoch's logs; the backup comes last so that an
    epoch is recorded as done only after everything else has finished it.
    """
    resuming = resume_epoch is not None
    evaluate = val is not None and cfg.eval_every > 0
    callbacks = []
    if evaluate:
        callbacks.append(
            COCOEvalCallback(
                val[0],
                val[1],
                every_n_epochs=cfg.eval_every,
                det_file=cfg.det_file,
                flip_test=cfg.flip_test,
            )
        )
    callbacks += [
        keras.callbacks.LearningRateScheduler(
            step_schedule(cfg.lr, cfg.lr_steps, cfg.lr_factor)
        ),
        _TensorBoard(str(out / "tensorboard")),
    ]
    if evaluate:
        # ModelCheckpoint's best is not part of the backup: take it from
        # the log so a resumed run does not overwrite a better checkpoint.
        best = (
            _best_logged(out / "log.csv", "val_AP", resume_epoch)
            if resuming
            else None
        )
        callbacks += [
            _BestCheckpoint(str(out / "best.weights.h5"), "val_AP", best),
            _FillMissingMetrics([f"val_{m}" for m in VAL_METRICS]),
        ]
    else:
        # Without val_AP there is no best: keep the latest epoch, in case
        # the backup is lost too. (`main` also writes it after `fit`.)
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                str(out / "last.weights.h5"), save_weights_only=True
            )
        )
    callbacks += [
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=resuming),
        keras.callbacks.BackupAndRestore(str(out / "backup")),
    ]
    return callbacks


def _backup_epoch(out):
    """Epoch stored by an interrupted run's BackupAndRestore, or `None`."""
    meta = out / "backup" / "training_metadata.json"
    if not meta.is_file():
        return None
    return int(json.loads(meta.read_text())["epoch"])


def sync_batchnorm_if_distributed(model):
    """Synchronised BN when the caller's strategy has several replicas.

    Returns:
        bool: whether the model's BatchNorm is now synchronised.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            model.sync_batchnorm = True
    return model.sync_batchnorm


def main(argv=None, callbacks=()):
    """Runs the training of `argv` (`sys.argv[1:]` when `None`).

    Args:
        argv: Command-line arguments.
        callbacks: Extra Keras callbacks, run after the script's own.

    Returns:
        dict: the final COCO metrics (none without a validation set),
        `best_AP`, `epochs_run` (epochs trained by this call), `history`
        (`model.fit`'s history) and the trained `model`.
    """
    cfg = parse_args(argv)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(
        json.dumps(dataclasses.asdict(cfg), indent=2)
    )
    keras.utils.set_random_seed(cfg.seed)
    (train_ann, train_images), val = _resolve_data(cfg, out)

    resume_epoch = _backup_epoch(out)
    if resume_epoch is not None:
        print(
            f"Resuming from the backup in {out / 'backup'} at epoch "
            f"{resume_epoch + 1} of {cfg.epochs}."
        )

    h, w = cfg.input_size
    model = zoo.load(cfg.model, input_shape=(h, w, 3), compile=False)
    train, report = build_top_down_dataset(
        train_ann,
        train_images,
        model.codec,
        batch_size=cfg.batch_size,
        training=True,
        # A resumed run must not replay the first epochs' shuffles and
        # augmentations.
        seed=cfg.seed + (resume_epoch or 0),
        return_report=True,
    )
    if report.spec.num_keypoints != model.num_keypoints:
        # The codec depends on the input size only, so `train` stays valid.
        model = zoo.load(
            cfg.model,
            input_shape=(h, w, 3),
            num_keypoints=report.spec.num_keypoints,
            compile=False,
        )
    if sync_batchnorm_if_distributed(model):
        print("BatchNorm synchronised across the strategy's replicas.")
    if cfg.steps_per_epoch:
        train = train.repeat()
    # A float learning rate is an optimizer variable that the scheduler
    # sets each epoch (see `step_schedule` for why not a schedule object).
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.lr), run_eagerly=cfg.run_eagerly
    )

    fit_callbacks = build_callbacks(cfg, out, val, resume_epoch)
    history = model.fit(
        train,
        epochs=cfg.epochs,
        steps_per_epoch=cfg.steps_per_epoch,
        callbacks=fit_callbacks + list(callbacks),
        verbose=cfg.verbose,
        shuffle=False,  # the pipeline shuffles
    )

    model.save_weights(out / "last.weights.h5")
    result = {
        "epochs_run": len(history.epoch),
        "history": history.history,
        "model": model,
    }
    metrics = {}
    # Best val_AP of the training evaluations (of best.weights.h5), this
    # call's and an interrupted one's alike.
    best = _best_logged(out / "log.csv", "val_AP", cfg.epochs)
    if val is not None:
        done = [
            e
            for c in fit_callbacks
            if isinstance(c, COCOEvalCallback)
            for e in c.history
        ]
        if done and done[-1][0] == cfg.epochs - 1:
            metrics = dict(done[-1][1])  # the last epoch was evaluated
        else:
            metrics = evaluate_top_down(
                model,
                val[0],
                val[1],
                det_file=cfg.det_file,
                flip_test=cfg.flip_test,
            )
        print(
            f"Final COCO keypoint AP {metrics['AP']:.4f} (AP50 "
            f"{metrics['AP50']:.4f}, AP75 {metrics['AP75']:.4f}, AR "
            f"{metrics['AR']:.4f})"
            + ("" if best is None else f"; best val_AP {best:.4f}")
        )
    else:
        print("No validation set (--val-ann): no COCO AP.")
    summary = {
        **{k: float(v) for k, v in metrics.items()},
        "best_AP": best,
        "backend": keras.backend.backend(),
        "epochs": cfg.epochs,
    }
    (out / "final_metrics.json").write_text(json.dumps(summary, indent=2))
    result.update(metrics)
    result["best_AP"] = best
    return result


if __name__ == "__main__":
    main()
