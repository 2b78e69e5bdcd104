"""Trains a top-down pose estimator with the HRNet paper recipe.

The defaults are the COCO recipe of the HRNet paper (Sun et al., CVPR 2019)
and its official config `w32_256x192_adam_lr1e-3.yaml`: HRNet-W32 at
256x192, Adam with learning rate 1e-3, dropped x0.1 at epochs 170 and 200,
210 epochs, the official augmentation (kerapose's `AugmentConfig()`) and
flip test at evaluation. The official run uses 32 crops per GPU on 4 GPUs;
`--batch-size` is the global batch of this single-process run.

It is plain `model.fit` with Keras callbacks, so it runs on the TensorFlow,
JAX and PyTorch backends (`KERAS_BACKEND=...`); the input pipeline is
tf.data in every case. The loop is `kerapose.training.train` (also behind
`kerapose train`); this script adds the paper's defaults and TensorBoard.
Everything goes under `--out`:

    config.json          the settings of the run
    log.csv              one row per epoch (loss, learning_rate, val_AP...)
    tensorboard/         TensorBoard event files (`tensorboard --logdir`)
    best.weights.h5      best weights by val_AP (when evaluation runs)
    last.weights.h5      the latest epoch's weights
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
import dataclasses
import importlib.util
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from kerapose.training import BestCheckpoint  # noqa: E402
from kerapose.training import TrainSettings  # noqa: E402
from kerapose.training import step_schedule  # noqa: E402, F401
from kerapose.training import train  # noqa: E402

# The best checkpoint by val_AP (kept under its former name here).
_BestCheckpoint = BestCheckpoint


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
        (`model.fit`'s history) and the trained `model` (see
        `kerapose.training.train`).
    """
    cfg = parse_args(argv)
    out = Path(cfg.out)

    def prepare(model):
        if sync_batchnorm_if_distributed(model):
            print("BatchNorm synchronised across the strategy's replicas.")

    return train(
        TrainSettings(**dataclasses.asdict(cfg)),
        callbacks=callbacks,
        loggers=[_TensorBoard(str(out / "tensorboard"))],
        prepare_model=prepare,
    )


if __name__ == "__main__":
    main()
