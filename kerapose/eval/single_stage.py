"""COCO keypoint and box AP of a single-stage (YOLO-Pose) estimator.

The official YOLO-Pose test (`test.py`): every image of the file,
letterboxed to the network input -> score threshold 0.001 and NMS at IoU
0.65 -> boxes and keypoints mapped back to the image -> each person scored
by its detection score (obj * cls), without rescoring or OKS NMS ->
pycocotools keypoint AP (20 people per image count) and box AP
(`iouType="bbox"`, 100 per image) on the same detections.
"""

from __future__ import annotations

import contextlib
import io
import os

import keras
import numpy as np
from pycocotools.cocoeval import COCOeval

from kerapose.eval.coco_evaluator import COCOEvaluator
from kerapose.eval.protocol import resolve_use_area
from kerapose.eval.top_down import _verbosity
from kerapose.eval.whole_image import whole_image_ground_truth
from kerapose.inference.yolo_pose import EVAL_IOU_THRESHOLD
from kerapose.inference.yolo_pose import EVAL_SCORE_THRESHOLD
from kerapose.inference.yolo_pose import predict_images_single_stage

# pycocotools' `COCOeval.stats` for iouType "bbox", prefixed.
BOX_METRIC_NAMES = tuple(
    "bbox_" + name
    for name in (
        "AP", "AP50", "AP75", "APS", "APM", "APL",
        "AR1", "AR10", "AR100", "ARS", "ARM", "ARL",
    )
)  # fmt: skip


def predict_dataset_single_stage(
    model,
    image_paths,
    image_ids,
    batch_size=8,
    verbose=1,
    **predict_kwargs,
):
    """Runs the detector over images, `batch_size` at a time.

    Args:
        model: YOLO-Pose estimator.
        image_paths: (N,) image files.
        image_ids: (N,) their ids.
        batch_size: images per forward pass (the last batch is padded, so
            one compiled shape serves all).
        verbose: 0 silent, otherwise a progress bar over the images.
        **predict_kwargs: passed to `predict_images_single_stage`
            (`score_threshold`, `iou_threshold`, `max_detections`).

    Returns:
        dict of numpy arrays over all people found: `keypoints` (P, K, 3:
        x, y, score) and `boxes` (P, 4: x, y, w, h) in image pixels,
        `image_id` (P,), `score` (P,).
    """
    if len(image_paths) != len(image_ids):
        raise ValueError(
            f"Got {len(image_paths)} image paths and {len(image_ids)} ids."
        )
    k = int(model.num_keypoints)
    parts = {"keypoints": [], "boxes": [], "image_id": [], "score": []}
    bar = keras.utils.Progbar(len(image_paths), unit_name="image")
    for start in range(0, len(image_paths), batch_size):
        paths = list(image_paths[start : start + batch_size])
        count = len(paths)
        paths += paths[-1:] * (batch_size - count)
        results = predict_images_single_stage(model, paths, **predict_kwargs)
        for result, image_id in zip(results[:count], image_ids[start:]):
            parts["keypoints"].append(
                np.concatenate(
                    [result.keypoints, result.keypoint_scores[..., None]], -1
                ).reshape(-1, k, 3)
            )
            parts["boxes"].append(result.boxes.reshape(-1, 4))
            parts["image_id"].append(np.full(len(result), image_id, np.int64))
            parts["score"].append(np.asarray(result.scores, np.float64))
        if verbose:
            bar.update(start + count)
    if not parts["image_id"]:
        return {
            "keypoints": np.zeros((0, k, 3), np.float32),
            "boxes": np.zeros((0, 4), np.float32),
            "image_id": np.zeros(0, np.int64),
            "score": np.zeros(0, np.float64),
        }
    return {name: np.concatenate(v) for name, v in parts.items()}


def box_metrics(coco_gt, category_id, image_ids, boxes, scores, verbose=False):
    """pycocotools box AP/AR (`iouType="bbox"`) of detections.

    Args:
        coco_gt: ground truth as a pycocotools `COCO`.
        category_id: the person category.
        image_ids: (P,) image ids.
        boxes: (P, 4) `[x, y, w, h]` in image pixels.
        scores: (P,) detection scores.
        verbose: print pycocotools' summary.

    Returns:
        `{name: float}` for `BOX_METRIC_NAMES` (zeros without detections).
    """
    if len(boxes) == 0:
        return {name: 0.0 for name in BOX_METRIC_NAMES}
    results = [
        {
            "image_id": int(i),
            "category_id": category_id,
            "bbox": [float(v) for v in box],
            "score": float(s),
        }
        for i, box, s in zip(image_ids, boxes, scores)
    ]
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        coco_eval.params.catIds = [category_id]
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    if verbose:
        print(log.getvalue(), end="")
    return {
        name: float(v) for name, v in zip(BOX_METRIC_NAMES, coco_eval.stats)
    }


def _score(evaluator, preds, results_file, verbose):
    missing = [
        key
        for key in ("keypoints", "boxes", "image_id", "score")
        if key not in preds
    ]
    if missing:
        raise ValueError(
            f"preds is missing {missing}; expected keypoints (P, K, 3), "
            "boxes (P, 4), image_id (P,) and score (P,)."
        )
    boxes = np.asarray(preds["boxes"], np.float64)
    if boxes.shape != (len(preds["keypoints"]), 4):
        raise ValueError(
            f"preds['boxes'] must have shape ({len(preds['keypoints'])}, 4), "
            f"one [x, y, w, h] per person. Received {boxes.shape}."
        )
    if len(preds["keypoints"]):
        # Checks shapes, finite values and image ids.
        evaluator.update(preds["image_id"], preds["keypoints"], preds["score"])
    if results_file is not None:
        evaluator.write_results_json(results_file)
    metrics = evaluator.result()
    metrics.update(
        box_metrics(
            evaluator.coco_gt,
            evaluator.category_id,
            np.asarray(preds["image_id"]),
            boxes,
            np.asarray(preds["score"], np.float64),
            verbose,
        )
    )
    metrics["num_predictions"] = evaluator.num_predictions
    return metrics


def score_single_stage_predictions(
    preds: dict,
    ann_file,
    spec,
    results_file=None,
    verbose: bool = False,
    *,
    use_area: bool | None = None,
    keypoint_field: str = "keypoints",
) -> dict:
    """Keypoint and box AP of single-stage predictions, scored as they are.

    Args:
        preds: `keypoints` (P, K, 3) and `boxes` (P, 4) `[x, y, w, h]` in
            image pixels, `image_id` (P,), `score` (P,) (see
            `predict_dataset_single_stage`).
        ann_file: ground-truth COCO keypoint JSON (or a loaded dict).
        spec: keypoint spec (OKS sigmas, default `use_area`).
        results_file: optional path for the COCO keypoint results JSON.
        verbose: print pycocotools' summaries.
        use_area: see `kerapose.eval.resolve_use_area`; `None` follows the
            spec.
        keypoint_field: annotation field of the keypoints to evaluate.

    Returns:
        keypoint metrics (`AP`, `AP50`, ...), box metrics (`bbox_AP`,
        `bbox_AP50`, ..., see `BOX_METRIC_NAMES`) and `num_predictions`.

    Raises:
        ValueError: on missing keys, mismatched shapes, NaN / infinite
            values or image ids not in the ground truth.
    """
    evaluator = COCOEvaluator.from_spec(
        ann_file,
        spec,
        use_area,
        keypoint_field=keypoint_field,
        verbose=bool(verbose),
    )
    return _score(evaluator, preds, results_file, bool(verbose))


def evaluate_single_stage(
    model,
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    score_threshold: float = EVAL_SCORE_THRESHOLD,
    iou_threshold: float = EVAL_IOU_THRESHOLD,
    max_detections: int | None = None,
    batch_size: int = 8,
    spec=None,
    results_file: str | os.PathLike | None = None,
    verbose: int | bool = 1,
    *,
    use_area: bool | None = None,
    keypoint_field: str = "keypoints",
) -> dict:
    """COCO keypoint AP and box AP of a YOLO-Pose model on a COCO file.

    The ground truth is read and checked before the model runs. Every image
    is predicted, those without people too, as the official test does.

    Args:
        model: `kerapose.models.YOLOPoseEstimator`.
        ann_file: ground-truth COCO keypoint JSON.
        image_dir: folder of its images.
        score_threshold: float. Defaults to `0.001` (official test).
        iou_threshold: float. NMS IoU. Defaults to `0.65` (official test).
        max_detections: int or `None` (the model decoder's, 100: all that
            box AP counts).
        batch_size: images per forward pass. Defaults to `8`.
        spec: keypoint spec; defaults to the file's.
        results_file: optional path for the COCO keypoint results JSON.
        verbose: `0` silent, `1` a progress bar, `2` (or `True`) also
            pycocotools' summaries.
        use_area: OKS scale, see `kerapose.eval.resolve_use_area`.
        keypoint_field: annotation field of the keypoints to evaluate.

    Returns:
        dict of keypoint metrics (`AP`, `AP50`, `AP75`, `APM`, `APL`,
        `AR`, ...), box metrics (`bbox_AP`, `bbox_AP50`, ...) and
        `num_predictions`.
    """
    level = _verbosity(verbose)
    resolve_use_area(use_area)  # a bad value fails before any work
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received {batch_size}")
    records, spec, evaluator = whole_image_ground_truth(
        model,
        ann_file,
        image_dir,
        spec,
        use_area,
        keypoint_field,
        verbose=level >= 2,
    )
    preds = predict_dataset_single_stage(
        model,
        records["image_path"],
        records["image_id"],
        batch_size=int(batch_size),
        verbose=level,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        max_detections=max_detections,
        spec=spec,
    )
    return _score(evaluator, preds, results_file, level >= 2)
