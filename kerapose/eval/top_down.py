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
from kerapose.eval.protocol import check_finite_predictions
from kerapose.eval.protocol import resolve_use_area
from kerapose.inference.top_down import keypoints_to_image
from kerapose.inference.top_down import predict_heatmaps


def _verbosity(verbose) -> int:
    # Booleans keep their old meaning: True printed the reports.
    if isinstance(verbose, bool):
        return 2 if verbose else 0
    return int(verbose)


def _num_batches(dataset):
    try:
        return len(dataset)
    except TypeError:  # unknown or infinite length
        return None


def predict_dataset(model, dataset, flip_indices=None, codec=None, verbose=1):
    """Runs an evaluation dataset of `(images, meta)` batches.

    Args:
        model: top-down estimator.
        dataset: batches of `(images, meta)` from `build_top_down_dataset(
            ..., training=False, include_meta=True)`.
        flip_indices: left/right joint permutation for the flip test, or
            `None` for no flip test.
        codec: heatmap codec used to decode; defaults to `model.codec`
            (pass another to compare decoders on the same network).
        verbose: 0 for silence, otherwise a progress bar over the batches.
            Defaults to `1`.

    Returns:
        dict of numpy arrays: `keypoints` (N, K, 3: x, y, score) in image
        pixels, `image_id`, `score` (box score), `area` (N,).
    """
    codec = codec or model.codec
    input_size = tuple(codec.input_size)
    parts = collections.defaultdict(list)
    bar = None
    if verbose:
        bar = keras.utils.Progbar(_num_batches(dataset), unit_name="batch")
    for step, (images, meta) in enumerate(dataset, 1):
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
        if bar is not None:
            bar.update(step)
    if bar is not None and bar.target is None and parts:
        bar.update(step, finalize=True)
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
    verbose: int | bool = 1,
    *,
    use_area: bool | None = None,
    keypoint_field: str = "keypoints",
) -> dict:
    """COCO keypoint AP/AR of `model` on a COCO-format file.

    The ground truth is read and checked before the model runs, so a bad
    file or option fails at once rather than after the predictions.

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
        verbose: `0` silent, `1` a progress bar over the batches, `2` (or
            `True`) also the loader report and pycocotools' summary.
            Defaults to `1`.
        use_area: OKS scale: `True` the ground-truth `area` (COCO), `False`
            0.53 times the ground-truth box area (CrowdPose, AIC), `None`
            (default) as the spec's protocol says, see
            `kerapose.eval.resolve_use_area`.
        keypoint_field: annotation field of the keypoints to evaluate,
            e.g. `"keypoints_21"` (Human-Art); passed to the data loader
            as well. Defaults to `"keypoints"`.

    Returns:
        dict with `AP`, `AP50`, `AP75`, `APM`, `APL`, `AR`, ... (floats),
        `AP_easy`, `AP_medium`, `AP_hard` for CrowdPose-format files, and
        `num_predictions`.
    """
    from kerapose.data.pipelines import build_top_down_dataset

    level = _verbosity(verbose)
    resolve_use_area(use_area)  # a bad value fails before any work
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
        verbose=level >= 2,
        return_report=True,
        keypoint_field=keypoint_field,
    )
    evaluator = COCOEvaluator.from_spec(
        ann_file,
        report.spec,
        use_area,
        keypoint_field=keypoint_field,
        verbose=level >= 2,
    )
    preds = predict_dataset(
        model,
        dataset,
        report.spec.flip_indices if flip_test else None,
        verbose=level,
    )
    return _score(
        evaluator, preds, nms_threshold, rescore_threshold, results_file
    )


def score_predictions(
    preds: dict,
    ann_file,
    spec,
    nms_threshold: float = 0.9,
    rescore_threshold: float = 0.2,
    results_file=None,
    verbose: bool = False,
    *,
    use_area: bool | None = None,
    keypoint_field: str = "keypoints",
) -> dict:
    """Rescoring, per-image OKS NMS and pycocotools AP of predictions.

    Args:
        preds: dict as returned by `predict_dataset`: `keypoints` (N, K, 3),
            `image_id`, `score` (box scores) and `area` (N,).
        ann_file: ground-truth COCO keypoint JSON (or a loaded dict).
        spec: keypoint spec (OKS sigmas, default `use_area`).
        nms_threshold: OKS NMS threshold. Defaults to `0.9` (official).
        rescore_threshold: keypoint score threshold of the rescoring.
        results_file: optional path for the COCO results JSON.
        verbose: print pycocotools' summary.
        use_area: see `evaluate_top_down`; `None` follows the spec.
        keypoint_field: see `evaluate_top_down`.

    Returns:
        COCO metrics dict plus `num_predictions`.

    Raises:
        ValueError: On missing keys, mismatched lengths, or NaN / infinite
            values (naming the prediction rows and their image ids).
    """
    evaluator = COCOEvaluator.from_spec(
        ann_file,
        spec,
        use_area,
        keypoint_field=keypoint_field,
        verbose=bool(verbose),
    )
    return _score(
        evaluator, preds, nms_threshold, rescore_threshold, results_file
    )


def _check_predictions(preds: dict) -> None:
    missing = [
        k for k in ("keypoints", "image_id", "score", "area") if k not in preds
    ]
    if missing:
        raise ValueError(
            f"preds is missing {missing}; expected the dict of "
            "predict_dataset (keypoints, image_id, score, area)"
        )
    n = len(preds["keypoints"])
    for key in ("image_id", "score", "area"):
        if len(preds[key]) != n:
            raise ValueError(
                f"preds[{key!r}] has {len(preds[key])} rows, preds"
                f"['keypoints'] has {n}"
            )
    check_finite_predictions(
        np.asarray(preds["image_id"]).tolist(),
        {
            "keypoints": np.asarray(preds["keypoints"], dtype=np.float64),
            "score": np.asarray(preds["score"], dtype=np.float64),
            "area": np.asarray(preds["area"], dtype=np.float64),
        },
    )


def _score(evaluator, preds, nms_threshold, rescore_threshold, results_file):
    """Rescoring, per-image OKS NMS and `evaluator.result()`."""
    _check_predictions(preds)
    rescored = rescore(
        preds["keypoints"][..., 2], preds["score"], rescore_threshold
    )
    for image_id in np.unique(preds["image_id"]):
        idx = np.flatnonzero(preds["image_id"] == image_id)
        keep = idx[
            oks_nms(
                preds["keypoints"][idx],
                rescored[idx],
                preds["area"][idx],
                evaluator.sigmas,
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

    Adds `val_AP`, `val_AP50`, ... (every metric of `evaluate_top_down`,
    `val_AP_easy` etc. on CrowdPose files) to the epoch logs, so
    TensorBoard and `ModelCheckpoint(monitor="val_AP", mode="max")` see
    them.

    Args:
        ann_file: validation COCO keypoint JSON.
        image_dir: folder of its images.
        every_n_epochs: int. Defaults to `1`.
        **kwargs: passed to `evaluate_top_down` (e.g. `det_file`,
            `flip_test`, `use_area`, `keypoint_field`, `verbose`).
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
            for name, value in metrics.items():
                if name != "num_predictions":
                    logs[f"val_{name}"] = value
        print(f"\nEpoch {epoch + 1}: COCO keypoint AP {metrics['AP']:.4f}")
