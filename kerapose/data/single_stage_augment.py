"""Whole-image augmentation of the single-stage (YOLO-Pose) recipe.

TensorFlow ops on one sample: the random draws, the random affine of the
official ``random_perspective`` (``M = T @ S @ R @ C``), the box filter of
its ``box_candidates``, the HSV jitter and the left-right flip with the
joint swap. :mod:`kerapose.data.single_stage` builds the canvas (letterbox
or 4-image mosaic) these act on.

Points use kerapose's pixel convention (as :mod:`kerapose.data.transforms`):
integer coordinates are pixel centres, so the affine that moves the labels
is the very matrix the image is warped with (``cv2.warpAffine``'s
convention) and the mirror is ``x -> W - 1 - x``.

Shape letters: Q people (padded), K keypoints, (H, W) network input.
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

__all__ = [
    "SingleStageAugmentConfig",
    "augment_hsv",
    "box_candidates",
    "draw_augment_params",
    "flip_people",
    "random_affine_matrix",
    "transform_people",
]

_PROBABILITIES = ("mosaic_probability", "fliplr")
_FRACTIONS = ("translate", "hsv_h", "hsv_s", "hsv_v")


@dataclasses.dataclass(frozen=True)
class SingleStageAugmentConfig:
    """Training augmentation of the official YOLO-Pose COCO recipe.

    Defaults are the pose hyperparameters of the official training:
    mosaic 1.0, degrees 0, translate 0.1, scale 0.5, shear 0, perspective
    0 (not supported), flipud 0 (not supported), fliplr 0.5, mixup 0, HSV
    gains 0.015 / 0.7 / 0.4. Setting a value to 0 (or ``mosaic=False``)
    switches that step off; all off leaves the letterboxed image.

    Attributes:
        mosaic: Build 4-image mosaics (the sample's image plus three drawn
            uniformly from the dataset, around a centre drawn uniformly in
            ``[0.5, 1.5]`` of the input size, on 114 grey).
        mosaic_probability: Probability of a mosaic per sample; the other
            samples are the letterboxed image alone.
        degrees: Rotation drawn uniformly in ``[-degrees, degrees]``.
        translate: Translation drawn uniformly in ``[-translate,
            translate]`` of the input size.
        scale: Zoom drawn uniformly in ``[1 - scale, 1 + scale]``.
        shear: Shear angles (x and y) drawn in ``[-shear, shear]`` degrees.
        fliplr: Probability of a left-right flip (left/right joints are
            swapped with the keypoint spec's flip indices).
        hsv_h: Hue gain: hue is multiplied by ``1 + uniform(-h, h)``
            (wrapping around), as saturation and value are by theirs
            (clipped).
        hsv_s: Saturation gain.
        hsv_v: Value gain.
        box_min_size: People whose augmented box is not wider and taller
            than this (pixels) are dropped.
        box_min_area_ratio: People whose augmented box keeps no more than
            this fraction of its zoomed area (the rest left the image) are
            dropped.
        box_max_aspect_ratio: People whose augmented box is this elongated
            or more are dropped.
    """

    mosaic: bool = True
    mosaic_probability: float = 1.0
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    fliplr: float = 0.5
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    box_min_size: float = 2.0
    box_min_area_ratio: float = 0.1
    box_max_aspect_ratio: float = 20.0

    def __post_init__(self):
        for name in _PROBABILITIES:
            _check_range(name, getattr(self, name), 0.0, 1.0, "a probability")
        for name in _FRACTIONS:
            _check_range(name, getattr(self, name), 0.0, 1.0, "a fraction")
        _check_range("degrees", self.degrees, 0.0, 180.0, "in degrees")
        _check_range("shear", self.shear, 0.0, 45.0, "in degrees")
        if not 0.0 <= self.scale < 1.0:
            raise ValueError(
                f"scale must be in [0, 1) (zoom 1 +- scale), got "
                f"{self.scale!r}."
            )
        _check_range("box_min_size", self.box_min_size, 0.0, math.inf, "")
        _check_range(
            "box_min_area_ratio", self.box_min_area_ratio, 0.0, 1.0, ""
        )
        if not self.box_max_aspect_ratio > 1.0:
            raise ValueError(
                f"box_max_aspect_ratio must be above 1, got "
                f"{self.box_max_aspect_ratio!r}."
            )
        if not isinstance(self.mosaic, bool):
            raise ValueError(f"mosaic must be a bool, got {self.mosaic!r}.")
        # Ints are welcome (translate=0); the graph wants float32 constants.
        for field in dataclasses.fields(self):
            if field.name != "mosaic":
                value = float(getattr(self, field.name))
                object.__setattr__(self, field.name, value)

    @property
    def uses_mosaic(self) -> bool:
        return self.mosaic and self.mosaic_probability > 0


def _check_range(name, value, low, high, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}.")
    if not low <= value <= high:
        what = f" ({what})" if what else ""
        raise ValueError(
            f"{name} must be in [{low}, {high}]{what}, got {value!r}."
        )


def draw_augment_params(
    seed, config: SingleStageAugmentConfig, num_images: int, input_size
) -> dict[str, tf.Tensor]:
    """Draws one sample's augmentation from a stateless seed.

    Args:
        seed: (2,) integer seed of the stateless random ops.
        config: The augmentation.
        num_images: Images to draw the mosaic's other three from.
        input_size: ``(H, W)`` network input.

    Returns:
        Dict of ``mosaic`` () bool, ``indices`` (3,) int32 (the mosaic's
        other images), ``center`` (2,) float32 mosaic centre ``(xc, yc)``
        on the ``(2H, 2W)`` canvas (whole pixels), ``angle`` () degrees,
        ``scale`` (), ``shear`` (2,) degrees (x, y), ``translate`` (2,)
        fraction of the input (x, y), ``hsv_gains`` (3,) and ``flip`` ()
        bool.
    """
    seeds = tf.random.experimental.stateless_split(
        tf.cast(seed, tf.int64), num=2
    )
    u = tf.random.stateless_uniform([13], seeds[0], dtype=tf.float32)
    sym = u * 2.0 - 1.0  # uniform in [-1, 1)
    height, width = (float(s) for s in input_size)
    return {
        "mosaic": u[0] < config.mosaic_probability
        if config.uses_mosaic
        else tf.constant(False),
        "indices": tf.random.stateless_uniform(
            [3], seeds[1], minval=0, maxval=num_images, dtype=tf.int32
        ),
        # The official int(uniform(s / 2, 3 s / 2)).
        "center": tf.floor(
            (u[1:3] + 1.0) * tf.constant([width * 0.5, height * 0.5])
        ),
        "angle": sym[3] * config.degrees,
        "scale": 1.0 + sym[4] * config.scale,
        "shear": sym[5:7] * config.shear,
        "translate": 0.5 + sym[7:9] * config.translate,
        "hsv_gains": 1.0
        + sym[9:12] * tf.constant([config.hsv_h, config.hsv_s, config.hsv_v]),
        "flip": u[12] < config.fliplr,
    }


def random_affine_matrix(
    canvas_size, output_size, angle, scale, shear, translate
) -> tf.Tensor:
    """The official ``random_perspective`` matrix ``T @ S @ R @ C``.

    ``C`` moves the canvas centre to the origin, ``R`` rotates by
    ``angle`` (counter-clockwise as displayed) and zooms by ``scale``
    (``cv2.getRotationMatrix2D``), ``S`` shears and ``T`` moves the origin
    to ``translate`` times the output size.

    Args:
        canvas_size: ``(height, width)`` of the image warped (the 2H x 2W
            mosaic or the H x W letterbox); may be tensors.
        output_size: ``(H, W)``.
        angle: () degrees.
        scale: () zoom.
        shear: (2,) degrees along x and y.
        translate: (2,) fractions of the output width and height.

    Returns:
        (2, 3) float32 canvas -> output matrix.
    """
    canvas_h = tf.cast(canvas_size[0], tf.float32)
    canvas_w = tf.cast(canvas_size[1], tf.float32)
    out = tf.constant([float(output_size[1]), float(output_size[0])])
    theta = tf.cast(angle, tf.float32) * (math.pi / 180.0)
    scale = tf.cast(scale, tf.float32)
    cos, sin = tf.cos(theta) * scale, tf.sin(theta) * scale
    rotate = tf.stack([tf.stack([cos, sin]), tf.stack([-sin, cos])])
    tan = tf.tan(tf.cast(shear, tf.float32) * (math.pi / 180.0))
    one = tf.ones_like(tan[0])
    shear_m = tf.stack([tf.stack([one, tan[0]]), tf.stack([tan[1], one])])
    linear = tf.matmul(shear_m, rotate)
    centre = -tf.stack([canvas_w, canvas_h]) * 0.5
    target = tf.cast(translate, tf.float32) * out
    shift = tf.linalg.matvec(linear, centre) + target
    return tf.concat([linear, shift[:, None]], axis=1)


def transform_people(boxes, keypoints, matrix, output_size):
    """Moves people with an affine map, as ``random_perspective`` does.

    Boxes become the bounds of their four moved corners, clipped to the
    output; keypoints moved outside ``[0, W] x [0, H]`` become unlabelled
    (``v = 0`` and ``x = y = 0``), as do those that were unlabelled.

    Args:
        boxes: (Q, 4) ``[x1, y1, x2, y2]``.
        keypoints: (Q, K, 3) ``x, y, v``.
        matrix: (2, 3) affine map.
        output_size: ``(H, W)``.

    Returns:
        ``(boxes, keypoints)`` of the same shapes, float32.
    """
    height, width = (float(s) for s in output_size)
    matrix = tf.cast(matrix, tf.float32)
    linear, shift = matrix[:, :2], matrix[:, 2]
    x1, y1, x2, y2 = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)
    corners = tf.stack(
        [
            tf.stack([x1, y1], -1),
            tf.stack([x2, y2], -1),
            tf.stack([x1, y2], -1),
            tf.stack([x2, y1], -1),
        ],
        axis=-2,
    )
    corners = tf.linalg.matvec(linear, corners) + shift
    low = tf.reduce_min(corners, axis=-2)
    high = tf.reduce_max(corners, axis=-2)
    limit = tf.constant([width, height])
    boxes = tf.concat(
        [tf.clip_by_value(low, 0.0, limit), tf.clip_by_value(high, 0.0, limit)],
        axis=-1,
    )
    keypoints = tf.cast(keypoints, tf.float32)
    xy = tf.linalg.matvec(linear, keypoints[..., :2]) + shift
    inside = tf.reduce_all((xy >= 0.0) & (xy <= limit), axis=-1)
    return boxes, _unlabel(xy, keypoints[..., 2], inside)


def _unlabel(xy, vis, keep):
    """Keypoints with ``v = 0`` and ``x = y = 0`` where ``keep`` is False."""
    keep = keep & (vis > 0)
    vis = tf.where(keep, vis, 0.0)
    xy = tf.where(keep[..., None], xy, 0.0)
    return tf.concat([xy, vis[..., None]], axis=-1)


def box_candidates(before, after, scale, config: SingleStageAugmentConfig):
    """The official ``box_candidates``: people the augmentation kept.

    Args:
        before: (Q, 4) boxes before the affine (on the canvas).
        after: (Q, 4) boxes after it, clipped to the output.
        scale: () the affine's zoom (``before`` is scaled by it).
        config: Thresholds (``box_min_size``, ``box_min_area_ratio``,
            ``box_max_aspect_ratio``).

    Returns:
        (Q,) bool.
    """
    eps = 1e-16
    w1 = (before[:, 2] - before[:, 0]) * scale
    h1 = (before[:, 3] - before[:, 1]) * scale
    w2 = after[:, 2] - after[:, 0]
    h2 = after[:, 3] - after[:, 1]
    aspect = tf.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (
        (w2 > config.box_min_size)
        & (h2 > config.box_min_size)
        & (w2 * h2 / (w1 * h1 + eps) > config.box_min_area_ratio)
        & (aspect < config.box_max_aspect_ratio)
    )


def augment_hsv(image, gains) -> tf.Tensor:
    """The official ``augment_hsv``: hue, saturation and value gains.

    Hue is multiplied and wraps around; saturation and value are
    multiplied and clipped. (The official code does it with uint8 lookup
    tables in OpenCV's HSV; this is the same map without the rounding.)

    Args:
        image: (H, W, 3) float32 RGB in [0, 255].
        gains: (3,) hue, saturation and value factors.

    Returns:
        (H, W, 3) float32 RGB in [0, 255].
    """
    hsv = tf.image.rgb_to_hsv(tf.clip_by_value(image, 0.0, 255.0) / 255.0)
    gains = tf.cast(gains, tf.float32)
    hue = tf.math.floormod(hsv[..., 0] * gains[0], 1.0)
    sat = tf.clip_by_value(hsv[..., 1] * gains[1], 0.0, 1.0)
    val = tf.clip_by_value(hsv[..., 2] * gains[2], 0.0, 1.0)
    return tf.image.hsv_to_rgb(tf.stack([hue, sat, val], -1)) * 255.0


def flip_people(boxes, keypoints, width, flip_indices):
    """Mirrors people left-right (``x -> width - 1 - x``), swapping joints.

    Args:
        boxes: (Q, 4) ``[x1, y1, x2, y2]``, clipped to ``[0, width]``.
        keypoints: (Q, K, 3) ``x, y, v`` (unlabelled ones all zero).
        width: The image width.
        flip_indices: (K,) the joint each joint becomes when mirrored.

    Returns:
        ``(boxes, keypoints)``; boxes clipped to ``[0, width]`` again,
        joints mirrored to ``x < 0`` unlabelled.
    """
    w = float(width)
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    boxes = tf.stack(
        [
            tf.clip_by_value(w - 1.0 - x2, 0.0, w),
            y1,
            tf.clip_by_value(w - 1.0 - x1, 0.0, w),
            y2,
        ],
        axis=-1,
    )
    keypoints = tf.gather(keypoints, flip_indices, axis=-2)
    x = w - 1.0 - keypoints[..., 0]
    xy = tf.stack([x, keypoints[..., 1]], axis=-1)
    # A joint within a pixel of the right edge mirrors to just left of 0.
    return boxes, _unlabel(xy, keypoints[..., 2], x >= 0.0)
