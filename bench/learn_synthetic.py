"""Does a small top-down model clearly learn? COCO AP on held-out synthetic
data after a bounded CPU training time.

    python bench/learn_synthetic.py [--minutes 5] [--model test_hrnet] [--write]
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from kerapose import zoo  # noqa: E402
from kerapose.data.pipelines import build_top_down_dataset  # noqa: E402
from kerapose.data.synthetic import write_synthetic_coco  # noqa: E402
from kerapose.eval.top_down import evaluate_top_down  # noqa: E402


class TimeBudget(keras.callbacks.Callback):
    """Stops after `seconds`, dividing the learning rate by 10 for the last
    `drop` fraction of the budget (the shape of the paper's step schedule)."""

    def __init__(self, seconds, lr, drop=0.2):
        super().__init__()
        self.seconds, self.lr, self.drop = seconds, lr, drop
        self.start = None
        self.epochs = 0

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        late = time.time() - self.start > (1 - self.drop) * self.seconds
        self.model.optimizer.learning_rate.assign(
            self.lr * (0.1 if late else 1.0)
        )

    def on_epoch_end(self, epoch, logs=None):
        self.epochs = epoch + 1
        if time.time() - self.start > self.seconds:
            self.model.stop_training = True


def run(model_name, minutes, input_size, train_images, val_images, lr, seed):
    keras.utils.set_random_seed(seed)
    data = tempfile.mkdtemp(prefix="kerapose_learn_")
    train = write_synthetic_coco(data, train_images, seed=seed, split="train")
    val = write_synthetic_coco(data, val_images, seed=seed, split="val")
    model = zoo.load(model_name, input_shape=(*input_size, 3), compile=False)
    model.compile(optimizer=keras.optimizers.Adam(lr))
    dataset = build_top_down_dataset(
        train,
        f"{data}/images",
        model.codec,
        batch_size=32,
        seed=seed,
        verbose=False,
    )
    budget = TimeBudget(minutes * 60, lr)
    start = time.time()
    history = model.fit(
        dataset, epochs=10_000, callbacks=[budget], verbose=2, shuffle=False
    )
    train_seconds = time.time() - start
    metrics = evaluate_top_down(model, val, f"{data}/images", verbose=False)
    return {
        "model": model_name,
        "input": "x".join(map(str, input_size)),
        "backend": keras.backend.backend(),
        "epochs": budget.epochs,
        "train_s": train_seconds,
        "final_loss": history.history["loss"][-1],
        **metrics,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="test_hrnet")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--input-size", type=int, nargs=2, default=(64, 64))
    parser.add_argument("--train-images", type=int, default=800)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    r = run(
        args.model,
        args.minutes,
        args.input_size,
        args.train_images,
        args.val_images,
        args.lr,
        args.seed,
    )
    table = (
        "| model | input | backend | train time | epochs | final loss | AP "
        "| AP50 | AP75 | AR |\n|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {r['model']} | {r['input']} | {r['backend']} "
        f"| {r['train_s'] / 60:.1f} min | {r['epochs']} "
        f"| {r['final_loss']:.4f} | {r['AP']:.3f} | {r['AP50']:.3f} "
        f"| {r['AP75']:.3f} | {r['AR']:.3f} |"
    )
    body = (
        f"{args.train_images} synthetic training images (seed {args.seed}), "
        f"AP on {args.val_images} held-out synthetic images (another split) "
        "with ground-truth boxes, flip test, pycocotools. Adam "
        f"{args.lr:g}, batch 32, learning rate / 10 for the last 20% of the "
        f"time budget.\n\n{table}"
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
