"""Does a small YOLO-Pose learn to find people and their keypoints? Box AP
and keypoint AP on held-out synthetic multi-person images after a bounded
CPU training time.

A narrow YOLO-Pose (the s6 structure at `--width` of YOLOv5's channels,
depth 0.33, SiLU, depthwise keypoint head, official P6 anchors), input 256,
trained with the official loss and augmentation (mosaic with `--mosaic`).
`--kpt-weight` and `--sigma-scale` deviate from the official loss; the
description says so when they do.

    python bench/learn_single_stage.py [--minutes 10] [--mosaic]
        [--kpt-weight 0.1] [--sigma-scale 1] [--write]
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from kerapose.data import single_stage_augment  # noqa: E402
from kerapose.data.single_stage import make_single_stage_dataset  # noqa: E402
from kerapose.data.synthetic import write_synthetic_coco  # noqa: E402
from kerapose.eval.single_stage import evaluate_single_stage  # noqa: E402
from kerapose.models import YOLOPoseBackbone  # noqa: E402
from kerapose.models import YOLOPoseEstimator  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from learn_synthetic import Budget  # noqa: E402

OFFICIAL_KPT_WEIGHT = 0.1  # hyp `kpt` of the official recipe


def small_yolo_pose(size, width):
    backbone = YOLOPoseBackbone(
        width_multiple=width, depth_multiple=0.33, image_shape=(size, size, 3)
    )
    return YOLOPoseEstimator(backbone, num_keypoints=17)


def run(args):
    keras.utils.set_random_seed(args.seed)
    data = tempfile.mkdtemp(prefix="kerapose_single_stage_")
    kw = dict(image_size=(192, 256), max_people=args.max_people, seed=args.seed)
    train = write_synthetic_coco(data, args.train_images, split="train", **kw)
    val = write_synthetic_coco(data, args.val_images, split="val", **kw)
    size = args.input_size
    model = small_yolo_pose(size, args.width)
    model.compile(optimizer=keras.optimizers.Adam(args.lr))
    if args.kpt_weight != OFFICIAL_KPT_WEIGHT or args.sigma_scale != 1:
        from kerapose.eval.functional import COCO_SIGMAS
        from kerapose.losses.yolo_pose_loss import YOLOPoseLoss

        model.loss_fn = YOLOPoseLoss(
            anchors=model.anchors,
            strides=model.strides,
            sigmas=[s * args.sigma_scale for s in COCO_SIGMAS],
            kpt_weight=args.kpt_weight,
        )
    augment = single_stage_augment.SingleStageAugmentConfig(mosaic=args.mosaic)
    dataset, _ = make_single_stage_dataset(
        train,
        f"{data}/images",
        input_size=(size, size),
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
    # The loss parts on one training batch (weighted, before batch scaling).
    images, targets = next(iter(dataset))
    parts = model.loss_fn.components(targets, model(images, training=False))
    parts = {k: float(keras.ops.convert_to_numpy(v)) for k, v in parts.items()}
    start = time.time()
    metrics = evaluate_single_stage(model, val, f"{data}/images", verbose=0)
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
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--train-images", type=int, default=384)
    parser.add_argument("--val-images", type=int, default=64)
    parser.add_argument("--max-people", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--mosaic", action="store_true")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--kpt-weight", type=float, default=0.1)
    parser.add_argument("--sigma-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    load = open("/proc/loadavg").read().split()[:3]
    r = run(args)
    m, p = r["metrics"], r["parts"]
    parts = " / ".join(f"{p[k]:.4f}" for k in ("box", "obj", "kpt", "kpt_conf"))
    deviations = []
    if args.kpt_weight != OFFICIAL_KPT_WEIGHT:
        deviations.append(
            f"keypoint OKS loss weight {args.kpt_weight:g} instead of the "
            f"official {OFFICIAL_KPT_WEIGHT:g}"
        )
    if args.sigma_scale != 1:
        deviations.append(
            f"OKS loss sigmas {args.sigma_scale:g} x COCO's (evaluation "
            "keeps COCO's)"
        )
    loss_text = "official loss" + (
        " except (DEVIATION from the official recipe) "
        + " and ".join(deviations)
        if deviations
        else ""
    )
    body = (
        f"Small YOLO-Pose (s6 structure, width multiple {args.width:g}, "
        f"depth 0.33, SiLU, depthwise keypoint head), input {args.input_size}. "
        f"{args.train_images} synthetic 256x192 training images with up to "
        f"{args.max_people} people (seed {args.seed}); box AP and keypoint "
        f"AP on {args.val_images} held-out images (another split, every "
        "eighth empty): official test settings (score 0.001, NMS IoU 0.65), "
        f"no boxes given, pycocotools. Adam {args.lr:g}, batch "
        f"{args.batch_size}, {loss_text}, official augmentation "
        f"(translate 0.1, scale 0.5, HSV, flip) with mosaic "
        f"{'on' if args.mosaic else 'off'}; learning rate / 10 for the last "
        f"20% of the {args.minutes:g}-minute budget. Load average before "
        f"the run {' '.join(load)} (the 2 cores are shared with another "
        "benchmark and a test run).\n\n"
        "| model | params | backend | train time | epochs | loss first -> "
        "last | box / obj / kpt / kpt conf | box AP | box AP50 | AP | AP50 "
        "| AP75 | AR | eval time |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"| small YOLO-Pose | {r['params']:,} | {r['backend']} "
        f"| {r['train_s'] / 60:.1f} min | {r['epochs']} "
        f"| {r['first_loss']:.3f} -> {r['final_loss']:.3f} | {parts} "
        f"| {m['bbox_AP']:.3f} | {m['bbox_AP50']:.3f} | {m['AP']:.3f} "
        f"| {m['AP50']:.3f} | {m['AP75']:.3f} | {m['AR']:.3f} "
        f"| {r['eval_s']:.0f} s |"
    )
    print(body)
    if args.write:
        from report import invocation
        from report import write_section

        write_section(
            "Learning single-stage on synthetic data (small YOLO-Pose)",
            body,
            invocation(),
        )


if __name__ == "__main__":
    main()
