"""COCO keypoint evaluation of a top-down estimator, the official protocol.

Person boxes (ground truth or detections) -> crops -> heatmaps (optionally
flip-tested) -> keypoints mapped back to the image -> rescoring -> OKS NMS
per image -> pycocotools AP.
"""

from __future__ import annotations

import collections
import os

import keras
import numpy as np

from kerapose.data.coco import PIXEL_STD
from kerapose.eval.coco_evaluator import COCOEvaluator
from kerapose.eval.functional import oks_nms
from kerapose.eval.functional import rescore
from kerapose.inference.top_down import keypoints_to_image
from kerapose.inference.top_down import predict_heatmaps


def predict_dataset(model, dataset, flip_indices=None, codec=None):
    """Runs an evaluation dataset of `(images, meta)` batches.

    Args:
        model: top-down estimator.
        dataset: batches of `(images, meta)` from `build_top_down_dataset(
            ..., training=False, include_meta=True)`.
        flip_indices: left/right joint permutation for the flip test, or
            `None` for no flip test.
        codec: heatmap codec used to decode; defaults to `model.codec`
            (pass another to compare decoders on the same network).

    Returns:
        dict of numpy arrays: `keypoints` (N, K, 3: x, y, score) in image
        pixels, `image_id`, `score` (box score), `area` (N,).
    """
    codec = codec or model.codec
    input_size = tuple(codec.input_size)
    parts = collections.defaultdict(list)
    for images, meta in dataset:
        images = np.asarray(images)
        centers = np.asarray(meta["center"])
        scales = np.asarray(meta["scale"])
        heatmaps = predict_heatmaps(model, images, flip_indices)
        keypoints, scores = codec.decode(heatmaps)
        keypoints = keypoints_to_image(
            keras.ops.convert_to_numpy(keypoints), centers, scales, input_size
        )
        scores = keras.ops.convert_to_numpy(scores)
        parts["keypoints"].append(
            np.concatenate([keypoints, scores[..., None]], axis=-1)
        )
        parts["image_id"].append(np.asarray(meta["image_id"]))
        parts["score"].append(np.asarray(meta["score"]))
        # The official evaluation uses the padded box area as the OKS area.
        parts["area"].append(np.prod(scales * PIXEL_STD, axis=1))
    if not parts:
        raise ValueError("The evaluation dataset is empty: no person boxes.")
    return {k: np.concatenate(v) for k, v in parts.items()}


def evaluate_top_down(
    model,
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    det_file: str | os.PathLike | None = None,
    det_score_threshold: float = 0.0,
    flip_test: bool = True,
    batch_size: int = 32,
    spec=None,
    nms_threshold: float = 0.9,
    rescore_threshold: float = 0.2,
    results_file: str | os.PathLike | None = None,
    verbose: bool = False,
) -> dict:
    """COCO keypoint AP/AR of `model` on a COCO-format file.

    Args:
        model: `kerapose.models.TopDownPoseEstimator`.
        ann_file: ground-truth COCO keypoint JSON.
        image_dir: folder of its images.
        det_file: person detections (COCO results JSON); defaults to the
            ground-truth boxes.
        det_score_threshold: lowest detection score kept.
        flip_test: average with mirrored crops. Defaults to `True`.
        batch_size: crops per forward pass.
        spec: keypoint spec; defaults to the file's keypoint count.
        nms_threshold: OKS NMS threshold. Defaults to `0.9` (official).
        rescore_threshold: keypoint score threshold of the rescoring.
        results_file: optional path for the COCO results JSON.
        verbose: print the loader report and pycocotools' summary.

    Returns:
        dict with `AP`, `AP50`, `AP75`, `APM`, `APL`, `AR`, ... (floats) and
        `num_predictions`.
    """
    from kerapose.data.pipelines import build_top_down_dataset

    dataset, report = build_top_down_dataset(
        ann_file,
        image_dir,
        model.codec,
        spec=spec,
        batch_size=batch_size,
        training=False,
        det_file=det_file,
        det_score_threshold=det_score_threshold,
        include_meta=True,
        verbose=verbose,
        return_report=True,
    )
    preds = predict_dataset(
        model, dataset, report.spec.flip_indices if flip_test else None
    )
    return score_predictions(
        preds,
        ann_file,
        report.spec,
        nms_threshold=nms_threshold,
        rescore_threshold=rescore_threshold,
        results_file=results_file,
        verbose=verbose,
    )


def score_predictions(
    preds: dict,
    ann_file,
    spec,
    nms_threshold: float = 0.9,
    rescore_threshold: float = 0.2,
    results_file=None,
    verbose: bool = False,
) -> dict:
    """Rescoring, per-image OKS NMS and pycocotools AP of predictions.

    Args:
        preds: dict as returned by `predict_dataset`: `keypoints` (N, K, 3),
            `image_id`, `score` (box scores) and `area` (N,).
        ann_file: ground-truth COCO keypoint JSON.
        spec: keypoint spec (OKS sigmas).

    Returns:
        COCO metrics dict plus `num_predictions`.
    """
    rescored = rescore(
        preds["keypoints"][..., 2], preds["score"], rescore_threshold
    )
    evaluator = COCOEvaluator(ann_file, sigmas=spec.sigmas, verbose=verbose)
    for image_id in np.unique(preds["image_id"]):
        idx = np.flatnonzero(preds["image_id"] == image_id)
        keep = idx[
            oks_nms(
                preds["keypoints"][idx],
                rescored[idx],
                preds["area"][idx],
                spec.sigmas,
                threshold=nms_threshold,
            )
        ]
        evaluator.update(
            preds["image_id"][keep], preds["keypoints"][keep], rescored[keep]
        )
    if results_file is not None:
        evaluator.write_results_json(results_file)
    metrics = evaluator.result()
    metrics["num_predictions"] = evaluator.num_predictions
    return metrics


class COCOEvalCallback(keras.callbacks.Callback):
    """Evaluates COCO keypoint AP every `every_n_epochs` during `fit`.

    Adds `val_AP`, `val_AP50`, ... to the epoch logs, so TensorBoard and
    `ModelCheckpoint(monitor="val_AP", mode="max")` see them.

    Args:
        ann_file: validation COCO keypoint JSON.
        image_dir: folder of its images.
        every_n_epochs: int. Defaults to `1`.
        **kwargs: passed to `evaluate_top_down` (e.g. `det_file`,
            `flip_test`).
    """

    def __init__(self, ann_file, image_dir, every_n_epochs=1, **kwargs):
        super().__init__()
        self.ann_file = ann_file
        self.image_dir = image_dir
        self.every_n_epochs = int(every_n_epochs)
        self.kwargs = kwargs
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        metrics = evaluate_top_down(
            self.model, self.ann_file, self.image_dir, **self.kwargs
        )
        self.history.append((epoch, metrics))
        if logs is not None:
            for name in ("AP", "AP50", "AP75", "APM", "APL", "AR"):
                logs[f"val_{name}"] = metrics[name]
        print(f"\nEpoch {epoch + 1}: COCO keypoint AP {metrics['AP']:.4f}")
