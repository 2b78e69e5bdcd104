"""Top-down inference: person boxes in, keypoints in image pixels out.

Shapes: N people, K keypoints, (H, W) network input, (h, w) heatmap.
"""

import cv2
import keras
import numpy as np

from kerapose.data.coco import BOX_PADDING
from kerapose.data.coco import box_to_center_scale
from kerapose.data.keypoint_specs import KeypointSpec
from kerapose.data.keypoint_specs import spec_for_num_keypoints
from kerapose.data.transforms import IMAGENET_MEAN as _MEAN
from kerapose.data.transforms import IMAGENET_STD as _STD
from kerapose.inference.affine import apply_matrix
from kerapose.inference.affine import crop_matrix
from kerapose.inference.boxes import validate_boxes
from kerapose.inference.compiled import attached
from kerapose.inference.fast_forward import FastForward
from kerapose.inference.image_io import read_image
from kerapose.inference.results import PoseResult
from kerapose.models.top_down_estimator import TopDownPoseEstimator

IMAGENET_MEAN = np.asarray(_MEAN, np.float32)
IMAGENET_STD = np.asarray(_STD, np.float32)
_FORWARD_ATTR = "_kerapose_fast_forward"


def crop_people(image, centers, scales, input_size):
    """Warps each person box to the network input and normalises it.

    Returns (N, H, W, 3) float32 crops.
    """
    h, w = input_size
    crops = [
        cv2.warpAffine(
            image,
            crop_matrix(c, s, 0.0, input_size),
            (w, h),
            flags=cv2.INTER_LINEAR,
        )
        for c, s in zip(centers, scales)
    ]
    crops = np.stack(crops).astype(np.float32) / 255.0
    return (crops - IMAGENET_MEAN) / IMAGENET_STD


def _heatmap_runner(model):
    """batch -> heatmaps (B, h, w, K) as NumPy.

    Keras estimators run through a `FastForward` kept on the model (on
    PyTorch a frozen trace, several times faster than eager); other
    runners (LiteRT, ONNX Runtime, test doubles) through
    `predict_on_batch`.
    """
    if not isinstance(model, TopDownPoseEstimator):
        return lambda batch: keras.ops.convert_to_numpy(
            model.predict_on_batch(batch)["heatmaps"]
        )
    forward = attached(model, _FORWARD_ATTR, lambda: FastForward(model))
    return lambda batch: np.asarray(model.final_heatmaps(forward(batch)))


def _run_in_buckets(model, crops, batch_size):
    """Heatmaps of crops in chunks of `batch_size`, each zero-padded to a
    power of two: a handful of batch shapes, so JAX and TensorFlow compile
    a few functions, not one per people count."""
    run = _heatmap_runner(model)
    out = []
    for start in range(0, len(crops), batch_size):
        chunk = crops[start : start + batch_size]
        size = min(batch_size, 1 << (len(chunk) - 1).bit_length())
        pad = np.zeros((size - len(chunk),) + chunk.shape[1:], chunk.dtype)
        heatmaps = run(np.concatenate([chunk, pad]))
        out.append(heatmaps[: len(chunk)])
    return np.concatenate(out)


def predict_heatmaps(model, crops, flip_indices=None, batch_size=32):
    """Heatmaps (N, h, w, K) of normalised crops, optionally flip-tested.

    The flip test averages with the heatmaps of the mirrored crops, mirrored
    back, with left/right channels swapped and, when the model's codec has
    `flip_shift` (the default), shifted one pixel to the right, as the
    official HRNet test does; official RSN tests without the shift.
    """
    heatmaps = _run_in_buckets(model, crops, batch_size)
    if flip_indices is None:
        return heatmaps
    flipped = _run_in_buckets(
        model, np.ascontiguousarray(crops[:, :, ::-1]), batch_size
    )
    flipped = flipped[:, :, ::-1][..., list(flip_indices)]
    if getattr(getattr(model, "codec", None), "flip_shift", True):
        # Column 0 keeps its value, as in the official code.
        flipped[:, :, 1:] = flipped[:, :, :-1].copy()
    return (heatmaps + flipped) * 0.5


def keypoints_to_image(keypoints, centers, scales, input_size):
    """Maps (N, K, 2) crop-pixel keypoints back to image pixels."""
    return np.stack(
        [
            apply_matrix(k, crop_matrix(c, s, 0.0, input_size, inverse=True))
            for k, c, s in zip(keypoints, centers, scales)
        ]
    ).astype(np.float32)


def _rescore(keypoint_scores, box_scores):
    # Imported here: kerapose.eval imports this module.
    from kerapose.eval.functional import rescore

    return rescore(keypoint_scores, box_scores).astype(np.float32)


def _check_box_scores(box_scores, num_boxes):
    if box_scores is None:
        return np.ones(num_boxes, np.float32)
    scores = np.asarray(box_scores, np.float32).reshape(-1)
    if len(scores) != num_boxes or not np.all(np.isfinite(scores)):
        raise ValueError(
            f"`box_scores` must be {num_boxes} finite numbers, one per box. "
            f"Received: {box_scores!r:.200}"
        )
    return scores


def predict_image(
    model,
    image,
    boxes=None,
    box_scores=None,
    flip_test=False,
    spec: KeypointSpec | None = None,
) -> PoseResult:
    """Runs a top-down estimator on one image.

    Args:
        model: `kerapose.models.TopDownPoseEstimator`.
        image: path or (H, W, 3) RGB array (see `read_image`: float
            arrays with a maximum of at most 1 are read as 0-1).
        boxes: (N, 4) person boxes `(x, y, w, h)` in pixels. Defaults to
            the whole image as one person. Boxes partly outside the image
            are clipped to it (`validate_boxes`).
        box_scores: (N,) detector scores. Defaults to 1.
        flip_test: bool. Average with the mirrored image. Defaults to
            `False`.
        spec: keypoint spec (flip pairs, skeleton). Defaults to the built-in
            spec with the model's keypoint count.

    Returns:
        `PoseResult` with keypoints in image pixels.

    Raises:
        ValueError: a box with a NaN, a non-positive size or no overlap
            with the image (the message names it), or `box_scores` of
            another length than `boxes`.
    """
    image = read_image(image)
    return predict_images(
        model,
        [image],
        None if boxes is None else [boxes],
        None if box_scores is None else [box_scores],
        flip_test=flip_test,
        spec=spec,
    )[0]


def predict_images(
    model,
    images,
    boxes=None,
    box_scores=None,
    flip_test=False,
    spec: KeypointSpec | None = None,
    batch_size=32,
):
    """`predict_image` on several images, all crops through one batch.

    The people of every image are cropped, run through the network
    together (`batch_size` crops per call) and split back per image:
    one network call per batch of crops, not one per person.

    Args:
        model: `kerapose.models.TopDownPoseEstimator`.
        images: list of paths or RGB arrays.
        boxes: list with one (N_i, 4) `(x, y, w, h)` array per image, or
            `None` for the whole image as one person (also per entry).
        box_scores: list of (N_i,) detector scores (or `None` entries).
        flip_test, spec: see `predict_image`.
        batch_size: int. Crops per network call. Defaults to `32`.

    Returns:
        list of `PoseResult`, one per image.
    """
    images = [read_image(im) for im in images]
    n = len(images)
    boxes = [None] * n if boxes is None else list(boxes)
    box_scores = [None] * n if box_scores is None else list(box_scores)
    if len(boxes) != n or len(box_scores) != n:
        raise ValueError(
            f"Give one entry of `boxes` and `box_scores` per image: {n} "
            f"images, {len(boxes)} box entries, {len(box_scores)} score "
            "entries."
        )
    if spec is None:
        spec = spec_for_num_keypoints(model.num_keypoints)
    skeleton = spec.skeleton if spec else ()
    input_size = tuple(model.input_shape[1:3])
    if None in input_size:
        input_size = model.codec.input_size
    aspect = input_size[1] / input_size[0]
    padding = getattr(getattr(model, "codec", None), "box_padding", BOX_PADDING)
    per_image, crops = [], []
    for image, b, sc in zip(images, boxes, box_scores):
        height, width = image.shape[:2]
        if b is None:
            b = np.array([[0, 0, width, height]], np.float32)
        b = validate_boxes(b, (height, width))
        sc = _check_box_scores(sc, len(b))
        centers, scales = (
            zip(*(box_to_center_scale(x, aspect, padding) for x in b))
            if len(b)
            else ((), ())
        )
        if len(b):
            crops.append(crop_people(image, centers, scales, input_size))
        per_image.append((b, sc, centers, scales, (height, width)))
    k = model.num_keypoints
    if crops:
        heatmaps = predict_heatmaps(
            model,
            np.concatenate(crops),
            spec.flip_indices if flip_test and spec else None,
            batch_size=batch_size,
        )
        all_keypoints, all_scores = model.codec.decode(heatmaps)
        all_keypoints = keras.ops.convert_to_numpy(all_keypoints)
        all_scores = keras.ops.convert_to_numpy(all_scores)
    results, start = [], 0
    for b, sc, centers, scales, shape in per_image:
        stop = start + len(b)
        if len(b) == 0:
            keypoints = np.zeros((0, k, 2), np.float32)
            keypoint_scores = np.zeros((0, k), np.float32)
            scores = np.zeros(0, np.float32)
        else:
            keypoints = keypoints_to_image(
                all_keypoints[start:stop], centers, scales, input_size
            )
            keypoint_scores = all_scores[start:stop]
            # The official rescoring, as the evaluation does it.
            scores = _rescore(keypoint_scores, sc)
        results.append(
            PoseResult(
                keypoints=keypoints,
                keypoint_scores=keypoint_scores,
                boxes=b,
                scores=scores,
                image_shape=shape,
                skeleton=skeleton,
            )
        )
        start = stop
    return results
