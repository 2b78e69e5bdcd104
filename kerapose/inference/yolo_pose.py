"""Single-stage (YOLO-Pose) inference: letterbox, detect, map back.

The official YOLO-Pose test: the image is resized keeping its aspect ratio
to fit the network input and centred on grey (114) padding (`letterbox`),
scaled to [0, 1] RGB; the network and `YOLOPoseDecoder` (obj * cls score,
greedy NMS) find the people; boxes and keypoints are mapped back to image
pixels and clipped to the image (`scale_coords`).

Shapes: N people, K keypoints, (H, W) network input.
"""

import dataclasses

import cv2
import keras
import numpy as np

from kerapose.codecs.yolo_pose_decoder import YOLOPoseDecoder
from kerapose.data.keypoint_specs import spec_for_num_keypoints
from kerapose.inference.image_io import read_image
from kerapose.inference.results import PoseResult

PAD_VALUE = 114  # the official letterbox grey
# The official thresholds: detect.py, and test.py for the COCO evaluation.
PREDICT_SCORE_THRESHOLD = 0.25
PREDICT_IOU_THRESHOLD = 0.45
EVAL_SCORE_THRESHOLD = 0.001
EVAL_IOU_THRESHOLD = 0.65


@dataclasses.dataclass(frozen=True)
class Letterbox:
    """Where `letterbox` put the image in the network input.

    Attributes:
        scale: input pixels per image pixel.
        left, top: padding before the image, input pixels.
        image_shape: `(h, w)` of the original image.
    """

    scale: float
    left: int
    top: int
    image_shape: tuple

    def to_image(self, xy):
        """(..., 2) input pixels -> image pixels, clipped to the image."""
        xy = (np.asarray(xy, np.float32) - (self.left, self.top)) / self.scale
        h, w = self.image_shape
        return np.clip(xy, 0.0, (w, h)).astype(np.float32)


def letterbox(image, input_size):
    """Fits an RGB uint8 image into `input_size` (H, W), centred on grey.

    The official letterbox (fixed output size): scale by the smaller of
    the two ratios, round the new size, split the padding with the extra
    pixel at the bottom / right. Shrinking uses area interpolation,
    enlarging bilinear, as the official evaluation loader.

    Returns:
        the (H, W, 3) uint8 input and its `Letterbox`.
    """
    h0, w0 = image.shape[:2]
    h, w = (int(s) for s in input_size)
    r = min(h / h0, w / w0)
    # At least one pixel: a 1 x 5000 strip still fits.
    new_w = min(w, max(1, int(round(w0 * r))))
    new_h = min(h, max(1, int(round(h0 * r))))
    if (new_w, new_h) != (w0, h0):
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, new_h), interpolation=interp)
    top = int(round((h - new_h) / 2 - 0.1))
    left = int(round((w - new_w) / 2 - 0.1))
    out = np.full((h, w, 3), PAD_VALUE, np.uint8)
    out[top : top + new_h, left : left + new_w] = image
    return out, Letterbox(r, left, top, (h0, w0))


class _Detector(keras.Model):
    """Estimator plus decoder, compiled by Keras' predict loop like the
    estimator's own `predict`; the thresholds are inputs, so one compiled
    function serves them all."""

    def __init__(self, estimator, decoder):
        super().__init__(name=f"{estimator.name}_detector")
        self.estimator = estimator
        self.decoder = decoder

    def call(self, inputs):
        images, thresholds = inputs
        raw = self.estimator(images, training=False)
        return self.decoder(raw, thresholds[0, 0], thresholds[0, 1])


def model_input_size(model):
    """(H, W) the model takes; a clear error for a dynamic input."""
    size = tuple(model.input_shape[1:3])
    if None in size:
        raise ValueError(
            f"{type(model).__name__} '{model.name}' has a dynamic input "
            f"size {size}; single-stage inference letterboxes to a fixed "
            "size. Build it with an `image_shape` (e.g. `kerapose.zoo.load"
            "(name, input_shape=(640, 640, 3))`)."
        )
    return size


def _check_threshold(name, value):
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1]. Received: {value}")
    return value


def run_detector(
    model, images, score_threshold, iou_threshold, max_detections=None
):
    """Images (B, H, W, 3) in [0, 1] -> the decoder's dict as NumPy.

    The model's decoder (`max_detections` replaced if given) with these
    thresholds, compiled once per model and `max_detections`.
    """
    base = getattr(model, "decoder", None)
    if not isinstance(base, YOLOPoseDecoder):
        raise ValueError(
            f"{type(model).__name__} has no YOLOPoseDecoder `decoder`: not a "
            "single-stage (YOLO-Pose) estimator."
        )
    thresholds = np.array(
        [
            [
                _check_threshold("score_threshold", score_threshold),
                _check_threshold("iou_threshold", iou_threshold),
            ]
        ],
        np.float32,
    )
    config = base.get_config()
    if max_detections is not None:
        config["max_detections"] = int(max_detections)
        config["pre_nms_top_k"] = max(
            config["pre_nms_top_k"], config["max_detections"]
        )
    key = repr(sorted(config.items()))
    # Kept on the model (past Keras' attribute tracking, which would make
    # them sublayers), so the compiled function is reused and freed with it.
    cache = model.__dict__.get("_single_stage_detectors")
    if cache is None:
        cache = {}
        object.__setattr__(model, "_single_stage_detectors", cache)
    if key not in cache:
        cache[key] = _Detector(model, YOLOPoseDecoder.from_config(config))
    out = cache[key].predict_on_batch((images, thresholds))
    return {name: keras.ops.convert_to_numpy(v) for name, v in out.items()}


def detections_to_results(detections, transforms, skeleton=()):
    """Decoded batch (numpy dict) -> one `PoseResult` per image.

    Args:
        detections: the decoder's dict, as NumPy arrays.
        transforms: one `Letterbox` per image.
        skeleton: keypoint index pairs for drawing.
    """
    results = []
    for i, lb in enumerate(transforms):
        n = int(detections["num_detections"][i])
        boxes = lb.to_image(detections["boxes"][i, :n].reshape(n, 2, 2))
        boxes = boxes.reshape(n, 4)
        boxes[:, 2:] -= boxes[:, :2]  # [x1, y1, x2, y2] -> [x, y, w, h]
        results.append(
            PoseResult(
                keypoints=lb.to_image(detections["keypoints"][i, :n]),
                keypoint_scores=np.asarray(
                    detections["keypoint_scores"][i, :n], np.float32
                ),
                boxes=boxes,
                scores=np.asarray(detections["scores"][i, :n], np.float32),
                image_shape=lb.image_shape,
                skeleton=skeleton,
            )
        )
    return results


def predict_images_single_stage(
    model,
    images,
    score_threshold=PREDICT_SCORE_THRESHOLD,
    iou_threshold=PREDICT_IOU_THRESHOLD,
    max_detections=None,
    spec=None,
):
    """`predict_image_single_stage` on a list of images, as one batch.

    Returns:
        list of `PoseResult`, one per image.
    """
    size = model_input_size(model)
    inputs, transforms = zip(
        *(letterbox(read_image(im), size) for im in images)
    )
    batch = np.stack(inputs).astype(np.float32) / 255.0
    detections = run_detector(
        model, batch, score_threshold, iou_threshold, max_detections
    )
    if spec is None:
        spec = spec_for_num_keypoints(model.num_keypoints)
    skeleton = spec.skeleton if spec else ()
    return detections_to_results(detections, transforms, skeleton)


def predict_image_single_stage(
    model,
    image,
    score_threshold=PREDICT_SCORE_THRESHOLD,
    iou_threshold=PREDICT_IOU_THRESHOLD,
    max_detections=None,
    flip_test=False,
    spec=None,
) -> PoseResult:
    """Finds every person in one image with a YOLO-Pose estimator.

    Args:
        model: `kerapose.models.YOLOPoseEstimator` (fixed input size).
        image: path or (H, W, 3) RGB array (see `read_image`).
        score_threshold: float. Lowest person score obj * cls kept.
            Defaults to `0.25` (official `detect.py`).
        iou_threshold: float. NMS IoU threshold. Defaults to `0.45`
            (official `detect.py`; the COCO evaluation uses 0.65).
        max_detections: int or `None` (the model decoder's, 100).
        flip_test: must be `False`: YOLO-Pose is tested without it here.
        spec: keypoint spec (skeleton for drawing). Defaults to the
            built-in spec with the model's keypoint count.

    Returns:
        `PoseResult`: `boxes` (N, 4) `[x, y, w, h]`, `scores` (N,) the
        detection scores, `keypoints` (N, K, 2) and `keypoint_scores`
        (N, K) the keypoint confidences, in image pixels, best first.

    Raises:
        ValueError: `flip_test=True`, a threshold outside [0, 1], a model
            without a YOLO-Pose decoder or with a dynamic input size.
    """
    if flip_test:
        raise ValueError(
            "flip_test is not available for single-stage (YOLO-Pose) "
            "models; call without it (the official YOLO-Pose results are "
            "without flip test)."
        )
    return predict_images_single_stage(
        model,
        [image],
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        max_detections=max_detections,
        spec=spec,
    )[0]
