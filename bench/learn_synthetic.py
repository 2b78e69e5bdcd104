"""Does a small top-down model clearly learn? COCO AP on held-out synthetic
data after a bounded CPU training time.

    python bench/learn_synthetic.py [--minutes 5 | --epochs N]
        [--model hrnet_w18_small] [--input-size 128 96] [--write]
"""

import argparse
import os
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from kerapose import zoo  # noqa: E402
from kerapose.data.pipelines import build_top_down_dataset  # noqa: E402
from kerapose.data.synthetic import write_synthetic_coco  # noqa: E402


class Budget(keras.callbacks.Callback):
    """Stops after `seconds` (or after `epochs` when set), dividing the
    learning rate by 10 for the last `drop` fraction of the budget (the
    shape of the paper's step schedule)."""

    def __init__(self, seconds, epochs, lr, drop=0.2):
        super().__init__()
        self.seconds, self.max_epochs = seconds, epochs
        self.lr, self.drop = lr, drop
        self.start = None
        self.epochs = 0

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        if self.max_epochs:
            late = epoch >= (1 - self.drop) * self.max_epochs
        else:
            elapsed = time.time() - self.start
            late = elapsed > (1 - self.drop) * self.seconds
        self.model.optimizer.learning_rate.assign(
            self.lr * (0.1 if late else 1.0)
        )

    def on_epoch_end(self, epoch, logs=None):
        self.epochs = epoch + 1
        if not self.max_epochs and time.time() - self.start > self.seconds:
            self.model.stop_training = True


def evaluate_decoders(model, ann_file, image_dir):
    """AP and mean keypoint error (image pixels, labelled joints) of the
    same heatmaps decoded with the quarter shift and with DARK."""
    from kerapose.codecs import MSRAHeatmap
    from kerapose.data.coco import load_coco_instances
    from kerapose.data.pipelines import build_top_down_dataset
    from kerapose.eval.top_down import predict_dataset
    from kerapose.eval.top_down import score_predictions

    dataset, report = build_top_down_dataset(
        ann_file,
        image_dir,
        model.codec,
        training=False,
        include_meta=True,
        verbose=False,
        return_report=True,
    )
    truth, _ = load_coco_instances(
        ann_file,
        image_dir,
        mode="eval",
        input_size=tuple(model.codec.input_size),
    )
    labelled = truth["visibility"] > 0
    results = {}
    for refinement in ("quarter", "dark"):
        codec = MSRAHeatmap.from_config(
            {**model.codec.get_config(), "refinement": refinement}
        )
        preds = predict_dataset(
            model, dataset, report.spec.flip_indices, codec=codec
        )
        error = np.linalg.norm(
            preds["keypoints"][..., :2] - truth["keypoints"], axis=-1
        )
        metrics = score_predictions(preds, ann_file, report.spec)
        metrics["error_px"] = float(error[labelled].mean())
        results[refinement] = metrics
    return results


def load_model(name, input_size, sigma=0.0):
    """A zoo model at `input_size` (H, W), untrained and uncompiled, with
    its codec's target sigma replaced when `sigma` is set."""
    model = zoo.load(name, input_shape=(*input_size, 3), compile=False)
    if sigma:
        from kerapose.codecs import MSRAHeatmap

        model.codec = MSRAHeatmap.from_config(
            {**model.codec.get_config(), "sigma": sigma}
        )
    return model


def add_sigma_argument(parser, default_help="the preset's"):
    parser.add_argument(
        "--sigma",
        type=float,
        default=0.0,
        help=f"Gaussian target sigma in heatmap pixels (0: {default_help})",
    )


def run(args):
    keras.utils.set_random_seed(args.seed)
    data = tempfile.mkdtemp(prefix="kerapose_learn_")
    train = write_synthetic_coco(
        data, args.train_images, seed=args.seed, split="train"
    )
    val = write_synthetic_coco(
        data, args.val_images, seed=args.seed, split="val"
    )
    model = load_model(args.model, args.input_size, args.sigma)
    model.compile(optimizer=keras.optimizers.Adam(args.lr))
    dataset = build_top_down_dataset(
        train,
        f"{data}/images",
        model.codec,
        batch_size=32,
        seed=args.seed,
        verbose=False,
    )
    budget = Budget(args.minutes * 60, args.epochs, args.lr)
    start = time.time()
    history = model.fit(
        dataset,
        epochs=args.epochs or 10_000,
        callbacks=[budget],
        verbose=2,
        shuffle=False,
    )
    train_seconds = time.time() - start
    decoders = evaluate_decoders(model, val, f"{data}/images")
    return {
        "model": args.model,
        "input": "x".join(map(str, args.input_size)),
        "backend": keras.backend.backend(),
        "epochs": budget.epochs,
        "train_s": train_seconds,
        "final_loss": history.history["loss"][-1],
        "params": model.count_params(),
        "sigma": model.codec.sigma,
        "decoders": decoders,
    }


def table(r):
    rows = [
        "| model | params | input | backend | train time | epochs "
        "| final loss | decode | AP | AP50 | AP75 | AR | error px |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in r["decoders"].items():
        rows.append(
            f"| {r['model']} | {r['params']:,} | {r['input']} "
            f"| {r['backend']} | {r['train_s'] / 60:.1f} min | {r['epochs']} "
            f"| {r['final_loss']:.4f} | {name} | {m['AP']:.3f} "
            f"| {m['AP50']:.3f} | {m['AP75']:.3f} | {m['AR']:.3f} "
            f"| {m['error_px']:.2f} |"
        )
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="hrnet_w18_small")
    parser.add_argument(
        "--minutes", type=float, default=5.0, help="training time budget"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=0,
        help="train this many epochs instead of a time budget (0: off)",
    )
    parser.add_argument("--input-size", type=int, nargs=2, default=(128, 96))
    parser.add_argument("--train-images", type=int, default=800)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-3)
    add_sigma_argument(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    r = run(args)
    budget = (
        f"{args.epochs} epochs" if args.epochs else f"{args.minutes:g} minutes"
    )
    body = (
        f"{args.train_images} synthetic training images (seed {args.seed}), "
        f"AP on {args.val_images} held-out synthetic images (another split) "
        "with ground-truth boxes, flip test, pycocotools. Adam "
        f"{args.lr:g}, batch 32, budget {budget}, learning rate / 10 for the "
        "last 20% of it. Target sigma "
        f"{r['sigma']:g} heatmap pixels. The same trained heatmaps are "
        "decoded twice: argmax + quarter-pixel shift, and DARK (Taylor "
        "refinement on the Gaussian-modulated heatmap). 'error px' is the "
        "mean distance to the labelled ground-truth joints in image pixels.\n\n"
        + table(r)
    )
    print(body)
    if args.write:
        from report import invocation
        from report import write_section

        write_section(
            f"Learning on synthetic data ({r['model']})",
            body,
            invocation(),
        )


if __name__ == "__main__":
    main()
