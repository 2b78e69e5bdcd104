"""Does a small bottom-up model learn to find and group people? COCO AP on
held-out synthetic multi-person images after a bounded CPU training time.

A small HigherHRNet: the HRNet-W18-small-v1 backbone (widths 16-128, one
module of two blocks per branch, light stage 1) with the HigherHRNet head
(tags and heatmaps at 1/4, heatmaps at 1/2). Input 128, outputs 32 and
64 by default (`--input-size 256`: 64 and 128).

    python bench/learn_bottom_up.py [--minutes 8] [--write]
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from kerapose.data.bottom_up import BottomUpAugmentConfig  # noqa: E402
from kerapose.data.bottom_up import make_bottom_up_dataset  # noqa: E402
from kerapose.data.synthetic import write_synthetic_coco  # noqa: E402
from kerapose.eval.bottom_up import evaluate_bottom_up  # noqa: E402
from kerapose.losses import BottomUpLoss  # noqa: E402
from kerapose.models import BottomUpPoseEstimator  # noqa: E402
from kerapose.models import HigherHRNetHead  # noqa: E402
from kerapose.models import HRNetBackbone  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from learn_synthetic import Budget  # noqa: E402


def small_higherhrnet(size, width=16, head_blocks=1):
    backbone = HRNetBackbone(
        stage_channels=(width, 2 * width, 4 * width, 8 * width),
        stage_modules=(1, 1, 1),
        stage_blocks=2,
        stage1_blocks=1,
        stage1_filters=32,
        image_shape=(size, size, 3),
    )
    head = HigherHRNetHead(
        num_keypoints=17, deconv_channels=width, num_basic_blocks=head_blocks
    )
    return BottomUpPoseEstimator(backbone, head, num_keypoints=17)


def run(args):
    keras.utils.set_random_seed(args.seed)
    data = tempfile.mkdtemp(prefix="kerapose_bottom_up_")
    kw = dict(image_size=(192, 256), max_people=args.max_people, seed=args.seed)
    train = write_synthetic_coco(data, args.train_images, split="train", **kw)
    val = write_synthetic_coco(data, args.val_images, split="val", **kw)
    size = args.input_size
    model = small_higherhrnet(size, args.width, args.head_blocks)
    # Official MultiLossFactory weights: heatmap 1, push 1e-3, pull 1e-3.
    loss = BottomUpLoss(17, [0, 1], [True, False], output_reduction="sum")
    model.compile(optimizer=keras.optimizers.Adam(args.lr), loss=loss)
    augment = BottomUpAugmentConfig(
        max_rotation=args.max_rotation, min_scale=0.75, max_scale=1.25
    )
    dataset, _ = make_bottom_up_dataset(
        train,
        f"{data}/images",
        input_size=size,
        output_sizes=(size // 4, size // 2),
        batch_size=args.batch_size,
        training=True,
        augment=augment,
        seed=args.seed,
    )
    budget = Budget(args.minutes * 60, 0, args.lr)
    start = time.time()
    history = model.fit(
        dataset.prefetch(2),
        epochs=10_000,
        callbacks=[budget],
        verbose=2,
        shuffle=False,  # the dataset shuffles
    )
    train_seconds = time.time() - start
    # The loss terms on one training batch: does it learn the tags too?
    images, targets = next(iter(dataset))
    parts = loss.components(targets, model(images, training=False))
    parts = {k: float(keras.ops.convert_to_numpy(v)) for k, v in parts.items()}
    start = time.time()
    metrics = evaluate_bottom_up(model, val, f"{data}/images", verbose=0)
    return {
        "params": model.count_params(),
        "backend": keras.backend.backend(),
        "epochs": budget.epochs,
        "train_s": train_seconds,
        "eval_s": time.time() - start,
        "first_loss": history.history["loss"][0],
        "final_loss": history.history["loss"][-1],
        "metrics": metrics,
        "parts": parts,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=8.0)
    # 256 (outputs 64, 128) did not leave the all-zero plateau in 3.6 min.
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--head-blocks", type=int, default=1)
    parser.add_argument("--train-images", type=int, default=512)
    parser.add_argument("--val-images", type=int, default=64)
    parser.add_argument("--max-people", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-rotation", type=float, default=15.0)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    load = open("/proc/loadavg").read().split()[:3]
    r = run(args)
    m, p = r["metrics"], r["parts"]
    body = (
        f"Small HigherHRNet (HRNet-W18-small-v1 backbone, widths "
        f"{args.width}-{8 * args.width}, HigherHRNet head with "
        f"{args.head_blocks} basic block(s)), input {args.input_size}, "
        f"outputs {args.input_size // 4} and {args.input_size // 2}. "
        f"{args.train_images} synthetic 256x192 training images with up to "
        f"{args.max_people} people (seed {args.seed}); AP on "
        f"{args.val_images} held-out images (another split, every eighth "
        "empty): official bottom-up test (flip, grouping, refinement), no "
        f"boxes given, pycocotools. Adam {args.lr:g}, batch "
        f"{args.batch_size}, official loss weights (heatmap 1, push and pull "
        f"1e-3), augmentation rotation ±{args.max_rotation:g}°, scale "
        "0.75-1.25, flip; learning rate / 10 for the last 20% of the "
        f"{args.minutes:g}-minute budget. Load average before the run "
        f"{' '.join(load)} (the 2 cores are shared with another benchmark "
        "and a test run).\n\n"
        "| model | params | backend | train time | epochs | loss first -> "
        "last | heatmap / push / pull | AP | AP50 | AP75 | AR "
        "| people found | eval time |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"| small HigherHRNet | {r['params']:,} | {r['backend']} "
        f"| {r['train_s'] / 60:.1f} min | {r['epochs']} "
        f"| {r['first_loss']:.4f} -> {r['final_loss']:.4f} "
        f"| {p['heatmap']:.4f} / {p['push']:.5f} / {p['pull']:.5f} "
        f"| {m['AP']:.3f} "
        f"| {m['AP50']:.3f} | {m['AP75']:.3f} | {m['AR']:.3f} "
        f"| {m['num_predictions']} | {r['eval_s']:.0f} s |"
    )
    print(body)
    if args.write:
        from report import invocation
        from report import write_section

        write_section(
            "Learning bottom-up on synthetic data (small HigherHRNet)",
            body,
            invocation(),
        )


if __name__ == "__main__":
    main()
