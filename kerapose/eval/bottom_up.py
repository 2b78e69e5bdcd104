"""COCO keypoint evaluation of a bottom-up estimator, the official protocol.

Every image of the file (with or without people) -> `predict_image_bottom_up`
(official test: scale 1, flip test, grouping, refinement) -> each person's
keypoints and score (mean keypoint score) as they are, without rescoring or
OKS NMS (HigherHRNet's `CocoDataset.evaluate` keeps all) -> pycocotools AP
(which counts the 20 best-scored people of an image).
"""

from __future__ import annotations

import os

import keras
import numpy as np

from kerapose.eval.coco_evaluator import COCOEvaluator
from kerapose.eval.protocol import resolve_use_area
from kerapose.eval.top_down import _verbosity
from kerapose.eval.whole_image import whole_image_ground_truth
from kerapose.inference.bottom_up import predict_image_bottom_up
from kerapose.inference.image_io import read_image


def _collect(results, image_ids, num_keypoints):
    """Stacks per-image `PoseResult`s into the prediction dict."""
    keypoints, ids, scores = [], [], []
    for result, image_id in zip(results, image_ids):
        if len(result) == 0:
            continue
        keypoints.append(
            np.concatenate(
                [result.keypoints, result.keypoint_scores[..., None]], -1
            )
        )
        ids.append(np.full(len(result), image_id, np.int64))
        scores.append(np.asarray(result.scores, np.float64))
    if not keypoints:
        return {
            "keypoints": np.zeros((0, num_keypoints, 3), np.float32),
            "image_id": np.zeros(0, np.int64),
            "score": np.zeros(0, np.float64),
        }
    return {
        "keypoints": np.concatenate(keypoints).astype(np.float32),
        "image_id": np.concatenate(ids),
        "score": np.concatenate(scores),
    }


def predict_images_bottom_up(
    model, image_paths, image_ids, verbose=1, **predict_kwargs
):
    """Runs `predict_image_bottom_up` over images.

    Args:
        model: bottom-up estimator.
        image_paths: (N,) image files.
        image_ids: (N,) their ids.
        verbose: 0 silent, otherwise a progress bar over the images.
        **predict_kwargs: passed to `predict_image_bottom_up` (`scales`,
            `flip`, `spec`, ...).

    Returns:
        dict of numpy arrays over all people found: `keypoints` (P, K, 3:
        x, y, score) in image pixels, `image_id` (P,), `score` (P,).
    """
    if len(image_paths) != len(image_ids):
        raise ValueError(
            f"Got {len(image_paths)} image paths and {len(image_ids)} ids."
        )
    bar = keras.utils.Progbar(len(image_paths), unit_name="image")
    results = []
    for step, path in enumerate(image_paths, 1):
        results.append(
            predict_image_bottom_up(model, read_image(path), **predict_kwargs)
        )
        if verbose:
            bar.update(step)
    return _collect(results, image_ids, int(model.num_keypoints))


def score_bottom_up_predictions(
    preds: dict,
    ann_file,
    spec,
    results_file=None,
    verbose: bool = False,
    *,
    use_area: bool | None = None,
    keypoint_field: str = "keypoints",
) -> dict:
    """pycocotools AP of bottom-up predictions, scored as they are.

    Args:
        preds: `keypoints` (P, K, 3) in image pixels, `image_id` (P,),
            `score` (P,) person scores (see `predict_images_bottom_up`).
        ann_file: ground-truth COCO keypoint JSON (or a loaded dict).
        spec: keypoint spec (OKS sigmas, default `use_area`).
        results_file: optional path for the COCO results JSON.
        verbose: print pycocotools' summary.
        use_area: see `kerapose.eval.resolve_use_area`; `None` follows the
            spec.
        keypoint_field: annotation field of the keypoints to evaluate.

    Returns:
        COCO metrics dict (`AP`, `AP50`, ...) plus `num_predictions`.

    Raises:
        ValueError: on missing keys, mismatched lengths, NaN / infinite
            values or image ids not in the ground truth.
    """
    missing = [k for k in ("keypoints", "image_id", "score") if k not in preds]
    if missing:
        raise ValueError(
            f"preds is missing {missing}; expected keypoints (P, K, 3), "
            "image_id (P,) and score (P,)."
        )
    evaluator = COCOEvaluator.from_spec(
        ann_file,
        spec,
        use_area,
        keypoint_field=keypoint_field,
        verbose=bool(verbose),
    )
    return _score(evaluator, preds, results_file)


def _score(evaluator, preds, results_file):
    if len(preds["keypoints"]):
        evaluator.update(preds["image_id"], preds["keypoints"], preds["score"])
    if results_file is not None:
        evaluator.write_results_json(results_file)
    metrics = evaluator.result()
    metrics["num_predictions"] = evaluator.num_predictions
    return metrics


def evaluate_bottom_up(
    model,
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    scales=(1,),
    flip: bool = True,
    spec=None,
    results_file: str | os.PathLike | None = None,
    verbose: int | bool = 1,
    *,
    use_area: bool | None = None,
    keypoint_field: str = "keypoints",
    **predict_kwargs,
) -> dict:
    """COCO keypoint AP/AR of a bottom-up estimator on a COCO-format file.

    The ground truth is read and checked before the model runs. Every image
    of the file is predicted, those without people too (people found there
    are false positives), as the official test does.

    Args:
        model: bottom-up estimator.
        ann_file: ground-truth COCO keypoint JSON.
        image_dir: folder of its images.
        scales: test scales. Defaults to `(1,)` (official).
        flip: flip test. Defaults to `True` (official).
        spec: keypoint spec; defaults to the file's.
        results_file: optional path for the COCO results JSON.
        verbose: `0` silent, `1` a progress bar, `2` (or `True`) also
            pycocotools' summary.
        use_area: OKS scale, see `kerapose.eval.resolve_use_area`.
        keypoint_field: annotation field of the keypoints to evaluate.
        **predict_kwargs: passed to `predict_image_bottom_up`
            (`input_size`, `normalization`, grouping settings, ...).

    Returns:
        dict with `AP`, `AP50`, `AP75`, `APM`, `APL`, `AR`, ... (floats),
        the CrowdPose levels for CrowdPose-format files, and
        `num_predictions`.
    """
    level = _verbosity(verbose)
    resolve_use_area(use_area)  # a bad value fails before any work
    records, spec, evaluator = whole_image_ground_truth(
        model,
        ann_file,
        image_dir,
        spec,
        use_area,
        keypoint_field,
        verbose=level >= 2,
    )
    preds = predict_images_bottom_up(
        model,
        records["image_path"],
        records["image_id"],
        verbose=level,
        scales=scales,
        flip=flip,
        spec=spec,
        **predict_kwargs,
    )
    return _score(evaluator, preds, results_file)
