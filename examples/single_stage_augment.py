"""Draws a grid of augmented single-stage (YOLO-Pose) training samples.

Each tile is one element of `make_single_stage_dataset` (mosaic, random
affine, HSV jitter, flip), with the targets the model is trained on drawn
on top: person boxes and the labelled keypoints with their skeleton. A
quick way to see that the labels move with the pixels.

    # the COCO sample of the test data, 2 x 3 tiles of 256 x 256
    python examples/single_stage_augment.py samples.jpg

    # your own data, larger tiles, no mosaic
    python examples/single_stage_augment.py samples.jpg \\
        --ann coco/annotations/person_keypoints_val2017.json \\
        --images coco/val2017 --input-size 640 --no-mosaic
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from kerapose.data.single_stage import make_single_stage_dataset  # noqa: E402
from kerapose.data.single_stage_augment import SingleStageAugmentConfig  # noqa: E402,E501
from kerapose.inference.draw import draw_poses  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_sample"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="picture to write (.jpg or .png)")
    parser.add_argument("--ann", default=str(SAMPLE / "test_coco.json"))
    parser.add_argument("--images", default=str(SAMPLE))
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--cols", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-mosaic", action="store_true")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not Path(args.ann).is_file():
        raise SystemExit(
            f"{args.ann} does not exist; pass a COCO keypoint file with "
            f"--ann and its image folder with --images."
        )
    size = args.input_size
    dataset, report = make_single_stage_dataset(
        args.ann,
        args.images,
        input_size=(size, size),
        batch_size=1,
        seed=args.seed,
        augment=SingleStageAugmentConfig(mosaic=not args.no_mosaic),
    )
    count = args.rows * args.cols
    tiles = []
    # Each pass over the data is shuffled and augmented afresh.
    for images, targets in dataset.repeat().take(count):
        image = np.round(images[0].numpy() * 255).astype(np.uint8)
        valid = targets["valid"][0].numpy() > 0
        keypoints = targets["keypoints"][0].numpy()[valid]
        x1, y1, x2, y2 = targets["boxes"][0].numpy()[valid].T
        tiles.append(
            draw_poses(
                image,
                keypoints[..., :2],
                keypoints[..., 2],
                report.spec.skeleton,
                boxes=np.stack([x1, y1, x2 - x1, y2 - y1], axis=-1),
                threshold=0.0,
            )
        )
    rows = [
        np.concatenate(tiles[r * args.cols : (r + 1) * args.cols], axis=1)
        for r in range(args.rows)
    ]
    grid = np.concatenate(rows, axis=0)
    if not cv2.imwrite(args.out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise SystemExit(f"could not write {args.out}")
    print(f"wrote {args.out} ({grid.shape[1]} x {grid.shape[0]})")


if __name__ == "__main__":
    main()
