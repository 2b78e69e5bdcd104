"""Top-down crop geometry and augmentation in TensorFlow ops (graph-safe).

Follows the official HRNet/SimpleBaseline recipe: a person is described by
``center`` (x, y) and ``scale`` (w, h in units of 200 px, already padded to
the input aspect ratio); the crop is the similarity transform that maps the
box, rotated by ``rotation`` degrees, onto the network input. Points follow
the OpenCV pixel convention (integer coordinates are pixel centres).

The geometry functions take one instance or a batch (leading dims written
``...``): the pipeline runs them once per batch, vectorised.

Shape letters: K keypoints, (H, W) network input.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import tensorflow as tf

from kerapose.data.coco import PIXEL_STD
from kerapose.data.keypoint_specs import KeypointSpec

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AugmentConfig",
    "affine_points",
    "affine_warp_image",
    "augment",
    "default_upper_body_indices",
    "flip_matrix",
    "compose_affine",
    "get_affine_matrix",
    "get_inverse_affine",
    "normalize_image",
    "warp_inverse",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Keypoint-name fragments of the lower body, for the half-body split.
_LOWER_BODY_WORDS = ("hip", "knee", "ankle", "foot", "heel", "toe", "pelvis")


def normalize_image(image: Any, max_value: float = 255.0) -> tf.Tensor:
    """RGB image(s) -> float32 normalised with the ImageNet mean and std.

    Args:
        image: (..., 3) RGB array or tensor, any real dtype.
        max_value: The value of full intensity: 255 for uint8 images and
            for floats on the 0-255 scale (what a warp of a decoded JPEG
            gives), 1 for floats in [0, 1].

    Returns:
        float32 tensor of the same shape, ``(image / max_value - mean) /
        std`` per channel.
    """
    # One multiply-add per value: x / (max * std) - mean / std.
    gain = [1.0 / (max_value * s) for s in IMAGENET_STD]
    bias = [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    return tf.cast(image, tf.float32) * gain + bias


def get_affine_matrix(
    center: Any,
    scale: Any,
    rot_deg: Any,
    output_size: tuple[int, int],
    inverse: bool = False,
) -> tf.Tensor:
    """The crop transform of the official ``get_affine_transform``.

    The official code fits a 2x3 matrix to three point pairs: the centre,
    the point half the source width "up" (rotated by ``rot_deg``), and a
    third point perpendicular to those. Those pairs define a similarity,
    computed here in closed form: rotate by ``-rot_deg`` about ``center``,
    scale by ``output_width / (scale[0] * 200)``, and move ``center`` to
    the middle of the output. Only ``scale[0]`` matters, as officially.

    Args:
        center: (..., 2) box centre (x, y) in image pixels.
        scale: (..., 2) box size (w, h) / 200.
        rot_deg: (...) rotation in degrees; the crop shows the image turned
            counter-clockwise (as displayed, y down) by this angle.
        output_size: ``(height, width)`` of the crop.
        inverse: Return the crop -> image matrix instead.

    Returns:
        (..., 2, 3) float32 matrix mapping image (x, y, 1) to crop (x, y).
    """
    center = tf.cast(center, tf.float32)
    scale = tf.cast(scale, tf.float32)
    theta = tf.cast(rot_deg, tf.float32) * (math.pi / 180.0)
    out_h, out_w = (float(s) for s in output_size)
    cos, sin = tf.cos(theta), tf.sin(theta)
    half_out = tf.constant([out_w * 0.5, out_h * 0.5], tf.float32)
    if inverse:
        k = scale[..., 0] * PIXEL_STD / out_w
        linear = _matrix2x2(cos, -sin, sin, cos) * k[..., None, None]
        shift = center - tf.linalg.matvec(linear, half_out)
    else:
        k = out_w / (scale[..., 0] * PIXEL_STD)
        linear = _matrix2x2(cos, sin, -sin, cos) * k[..., None, None]
        shift = half_out - tf.linalg.matvec(linear, center)
    return tf.concat([linear, shift[..., None]], axis=-1)


def _matrix2x2(a, b, c, d):
    """(..., 2, 2) matrices ``[[a, b], [c, d]]`` of same-shape entries."""
    return tf.stack([tf.stack([a, b], -1), tf.stack([c, d], -1)], -2)


def flip_matrix(image_width: Any) -> tf.Tensor:
    """The official horizontal mirror ``x -> width - 1 - x`` as a matrix.

    Args:
        image_width: (...) image width in pixels.

    Returns:
        (..., 2, 3) float32 matrix.
    """
    w = tf.cast(image_width, tf.float32)
    zero, one = tf.zeros_like(w), tf.ones_like(w)
    return tf.stack(
        [tf.stack([-one, zero, w - 1.0], -1), tf.stack([zero, one, zero], -1)],
        -2,
    )


def compose_affine(outer: Any, inner: Any) -> tf.Tensor:
    """Composes two affine maps.

    Args:
        outer: (..., 2, 3) matrix applied second.
        inner: (..., 2, 3) matrix applied first.

    Returns:
        (..., 2, 3) float32 matrix of ``outer(inner(p))``.
    """
    outer = tf.cast(outer, tf.float32)
    inner = tf.cast(inner, tf.float32)
    linear = tf.matmul(outer[..., :2], inner[..., :2])
    shift = tf.linalg.matvec(outer[..., :2], inner[..., 2]) + outer[..., 2]
    return tf.concat([linear, shift[..., None]], axis=-1)


def affine_points(points: Any, matrix: Any) -> tf.Tensor:
    """Maps points with an affine matrix (the official ``affine_transform``).

    Args:
        points: (..., 2) (x, y) points.
        matrix: (2, 3) matrix, or a stack of them whose leading dims
            broadcast against those of ``points`` (e.g. (B, 1, 2, 3) for
            (B, K, 2) points).

    Returns:
        (..., 2) float32 mapped points.
    """
    points = tf.cast(points, tf.float32)
    matrix = tf.cast(matrix, tf.float32)
    return tf.linalg.matvec(matrix[..., :2], points) + matrix[..., 2]


def get_inverse_affine(matrix: Any) -> tf.Tensor:
    """Inverts an affine map.

    Args:
        matrix: (..., 2, 3) matrix with a non-singular linear part.

    Returns:
        (..., 2, 3) float32 matrix of the inverse map.
    """
    matrix = tf.cast(matrix, tf.float32)
    a, b, c = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 0, 2]
    d, e, f = matrix[..., 1, 0], matrix[..., 1, 1], matrix[..., 1, 2]
    det = a * e - b * d
    linear = _matrix2x2(e, -b, -d, a) / det[..., None, None]
    shift = tf.stack([b * f - c * e, c * d - a * f], -1) / det[..., None]
    return tf.concat([linear, shift[..., None]], axis=-1)


def affine_warp_image(
    image: Any,
    matrix: Any,
    output_size: tuple[int, int],
    normalize: bool = False,
) -> tf.Tensor:
    """Bilinear warp like ``cv2.warpAffine(image, matrix, ...)``, fill 0.

    Args:
        image: (H, W, C) image, any real dtype.
        matrix: (2, 3) image -> crop matrix.
        output_size: ``(height, width)`` of the crop.
        normalize: Return :func:`normalize_image` of the crop (C = 3),
            computed in the same pass.

    Returns:
        (height, width, C) float32 crop.
    """
    inverse = get_inverse_affine(matrix)
    return warp_inverse(image, inverse, output_size, normalize)


def warp_inverse(
    image: Any,
    inverse: Any,
    output_size: tuple[int, int],
    normalize: bool = False,
) -> tf.Tensor:
    """:func:`affine_warp_image` given the crop -> image matrix.

    Each output pixel blends its four source neighbours; neighbours outside
    the image count as 0 (OpenCV's constant border). The sampling is one
    XLA-compiled loop: the TensorFlow kernels for it
    (ImageProjectiveTransformV3, crop_and_resize) cost 2-3x more, and the
    normalisation rides along for free.

    Args:
        image: (H, W, C) image, any real dtype.
        inverse: (2, 3) crop (x, y, 1) -> image (x, y) matrix.
        output_size: ``(height, width)`` of the crop.
        normalize: See :func:`affine_warp_image`.

    Returns:
        (height, width, C) float32 crop.
    """
    image = tf.convert_to_tensor(image)
    channels = image.shape[-1]
    if channels is None:
        raise ValueError("the image needs a static channel count.")
    shape = tf.shape(image)
    count = shape[0] * shape[1]
    # XLA compiles once per input shape, so the pixels go in as a flat list
    # padded to a power of two: a few shapes cover any image size.
    bucket = tf.cast(
        2.0 ** tf.math.ceil(tf.math.log(tf.cast(count, tf.float32)) / _LN2),
        tf.int32,
    )
    bucket = tf.where(bucket < count, 2 * bucket, bucket)
    bucket = tf.maximum(bucket, _MIN_BUCKET)
    # (Padding the flat bytes is a plain copy; a (count, C) pad is slower.)
    pixels = tf.pad(tf.reshape(image, [-1]), [[0, (bucket - count) * channels]])
    pixels = tf.reshape(pixels, [bucket, channels])
    if normalize:
        if channels != 3:
            raise ValueError(f"normalize wants RGB images, got {channels}.")
        gain = [1.0 / (255.0 * s) for s in IMAGENET_STD]
        bias = [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    else:
        gain, bias = [1.0] * channels, [0.0] * channels
    crop = _bilinear_sample()(
        pixels,
        shape[0],
        shape[1],
        tf.cast(inverse, tf.float32),
        tf.constant(gain, tf.float32),
        tf.constant(bias, tf.float32),
        tuple(int(s) for s in output_size),
    )
    return tf.ensure_shape(crop, (*output_size, channels))


_LN2 = math.log(2.0)
_MIN_BUCKET = 4096


def _sample_pixels(pixels, height, width, inverse, gain, bias, output_size):
    """The warp loop: (L, C) row-major pixels -> (h, w, C) float32 crop."""
    out_h, out_w = output_size
    u = tf.range(out_w, dtype=tf.float32)[None, :]
    v = tf.range(out_h, dtype=tf.float32)[:, None]
    # Beyond one pixel outside, every neighbour is fill: clipping there
    # changes nothing and keeps the int cast defined.
    x = inverse[0, 0] * u + (inverse[0, 1] * v + inverse[0, 2])
    y = inverse[1, 0] * u + (inverse[1, 1] * v + inverse[1, 2])
    x = tf.clip_by_value(x, -1.0, tf.cast(width, tf.float32))
    y = tf.clip_by_value(y, -1.0, tf.cast(height, tf.float32))
    x0, y0 = tf.floor(x), tf.floor(y)
    fx, fy = x - x0, y - y0
    xi, yi = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    # Neighbours outside the image get weight 0 (and a clamped index);
    # xi, yi >= -1, so xi + 1, yi + 1 >= 0.
    wx0 = tf.where((xi >= 0) & (xi < width), 1.0 - fx, 0.0)[..., None]
    wx1 = tf.where(xi + 1 < width, fx, 0.0)[..., None]
    wy0 = tf.where((yi >= 0) & (yi < height), 1.0 - fy, 0.0)[..., None]
    wy1 = tf.where(yi + 1 < height, fy, 0.0)[..., None]
    col0 = tf.clip_by_value(xi, 0, width - 1)
    col1 = tf.minimum(xi + 1, width - 1)
    row0 = tf.clip_by_value(yi, 0, height - 1) * width
    row1 = tf.minimum(yi + 1, height - 1) * width

    def tap(index):
        return tf.cast(tf.gather(pixels, index), tf.float32)

    top = wx0 * tap(row0 + col0) + wx1 * tap(row0 + col1)
    bottom = wx0 * tap(row1 + col0) + wx1 * tap(row1 + col1)
    return (wy0 * top + wy1 * bottom) * gain + bias


@functools.lru_cache(maxsize=None)
def _bilinear_sample():
    """:func:`_sample_pixels`, XLA-compiled where XLA is available."""
    compiled = tf.function(_sample_pixels, jit_compile=True)
    try:
        with tf.init_scope():  # run it now, even from inside a trace
            compiled(
                tf.zeros([4, 1], tf.uint8), 2, 2, tf.eye(2, 3), [1.0], [0.0],
                (1, 1),
            )  # fmt: skip
    except (tf.errors.OpError, ValueError, NotImplementedError):
        return tf.function(_sample_pixels)  # same values, ~2x slower
    return compiled


def default_upper_body_indices(spec: KeypointSpec) -> tuple[int, ...]:
    """Keypoints not named like a lower-body part (hip, knee, ankle, ...).

    Gives the official splits: COCO 0-10, MPII 7-15, and for CrowdPose the
    arms plus head and neck.
    """
    return tuple(
        i
        for i, name in enumerate(spec.keypoint_names)
        if not any(word in name.lower() for word in _LOWER_BODY_WORDS)
    )


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation of the official HRNet COCO recipe.

    Attributes:
        scale_factor: Scale is multiplied by ``clip(1 + 0.35 * randn,
            1 - 0.35, 1 + 0.35)``.
        rotation_factor: With probability ``rotation_prob`` the rotation is
            ``clip(45 * randn, -90, 90)`` degrees (the official factor 45,
            so angles reach +-90, not +-45), else 0.
        rotation_prob: Probability of rotating.
        flip_prob: Probability of a horizontal flip.
        half_body_prob: Probability of the half-body crop, tried only with
            more than ``half_body_min_joints`` labelled keypoints.
        half_body_min_joints: See ``half_body_prob``.
        half_body_padding: Padding of the half-body box (official 1.5).
        upper_body_indices: Upper-body keypoints for the half-body split;
            None derives them from the spec's names
            (:func:`default_upper_body_indices`).
    """

    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    half_body_padding: float = 1.5
    upper_body_indices: tuple[int, ...] | None = None


def augment(
    sample: dict[str, Any],
    seed: Any,
    spec: KeypointSpec,
    aspect_ratio: float,
    config: AugmentConfig | None = None,
) -> dict[str, tf.Tensor]:
    """Draws the official random crop parameters for instances.

    Order as in the official code: half-body crop (on the unflipped
    labels), scale, rotation, then flip. The flip mirrors ``center`` and
    the keypoints (``x -> width - 1 - x``) and swaps left/right keypoints
    with ``spec.flip_indices``; the image itself is mirrored inside the
    warp (see :func:`flip_matrix`).

    Works on one instance or on a batch (any leading dims, written ``...``
    below); a batch draws independent parameters for each instance from
    the one ``seed``, in a few vectorised ops.

    Args:
        sample: Dict with ``center`` (..., 2), ``scale`` (..., 2),
            ``keypoints`` (..., K, 2), ``visibility`` (..., K) and
            ``image_width`` (...). Other keys are passed through.
        seed: (2,) integer seed for the stateless random ops.
        spec: Keypoint spec (flip pairs, half-body split).
        aspect_ratio: Input width / height.
        config: Augmentation settings. Defaults to ``AugmentConfig()``.

    Returns:
        A copy of ``sample`` with new ``center``, ``scale``,
        ``keypoints`` and ``visibility``, plus ``rotation`` (...) in
        degrees and ``flip`` (...) bool.
    """
    config = config or AugmentConfig()
    center = tf.cast(sample["center"], tf.float32)
    scale = tf.cast(sample["scale"], tf.float32)
    kpts = tf.cast(sample["keypoints"], tf.float32)
    vis = tf.cast(sample["visibility"], tf.float32)
    shape = tf.shape(center)[:-1]  # () for one instance
    seeds = tf.random.experimental.stateless_split(
        tf.cast(seed, tf.int64), num=6
    )
    normal = [tf.random.stateless_normal(shape, seeds[i]) for i in range(3)]
    uniform = [tf.random.stateless_uniform(shape, seeds[i]) for i in (3, 4, 5)]
    out = dict(sample)

    labelled = vis > 0
    num_labelled = tf.reduce_sum(tf.cast(labelled, tf.int32), -1)
    try_half = (num_labelled > config.half_body_min_joints) & (
        uniform[0] < config.half_body_prob
    )
    center, scale = _half_body(
        try_half, normal[0], kpts, labelled, center, scale, spec, config,
        aspect_ratio,
    )  # fmt: skip

    sf = config.scale_factor
    factor = tf.clip_by_value(normal[1] * sf + 1.0, 1.0 - sf, 1.0 + sf)
    scale = scale * factor[..., None]
    rf = config.rotation_factor
    rotation = tf.where(
        uniform[1] < config.rotation_prob,
        tf.clip_by_value(normal[2] * rf, -2.0 * rf, 2.0 * rf),
        0.0,
    )

    flip = uniform[2] < config.flip_prob
    width = tf.cast(sample["image_width"], tf.float32)
    flip_idx = tf.constant(spec.flip_indices, tf.int32)
    mirrored = tf.stack(
        [width[..., None] - kpts[..., 0] - 1.0, kpts[..., 1]], axis=-1
    )
    kpts = tf.where(
        flip[..., None, None], tf.gather(mirrored, flip_idx, axis=-2), kpts
    )
    vis = tf.where(flip[..., None], tf.gather(vis, flip_idx, axis=-1), vis)
    mirrored = tf.stack([width - center[..., 0] - 1.0, center[..., 1]], -1)
    center = tf.where(flip[..., None], mirrored, center)
    out.update(
        center=center,
        scale=scale,
        keypoints=kpts * tf.cast(vis > 0, tf.float32)[..., None],
        visibility=vis,
        rotation=rotation,
        flip=flip,
    )
    return out


def _half_body(
    enabled, draw, kpts, labelled, center, scale, spec, config, aspect_ratio
):
    """The official ``half_body_transform``: a box around half the body."""
    upper_ids = config.upper_body_indices
    if upper_ids is None:
        upper_ids = default_upper_body_indices(spec)
    is_upper = [i in set(upper_ids) for i in range(spec.num_keypoints)]
    is_upper = tf.constant(is_upper)
    upper = labelled & is_upper
    lower = labelled & ~is_upper
    n_upper = tf.reduce_sum(tf.cast(upper, tf.int32), -1)
    n_lower = tf.reduce_sum(tf.cast(lower, tf.int32), -1)
    # Officially `randn() < 0.5` (a normal draw, so upper ~69% of the time).
    pick_upper = (draw < 0.5) & (n_upper > 2)
    selected = tf.where(
        pick_upper[..., None],
        upper,
        tf.where((n_lower > 2)[..., None], lower, upper),
    )
    count = tf.reduce_sum(tf.cast(selected, tf.float32), -1)
    sel = tf.cast(selected, tf.float32)[..., None]
    half_center = (
        tf.reduce_sum(kpts * sel, -2) / tf.maximum(count, 1.0)[..., None]
    )
    big = tf.constant(3.0e38, tf.float32)
    low = tf.reduce_min(tf.where(selected[..., None], kpts, big), -2)
    high = tf.reduce_max(tf.where(selected[..., None], kpts, -big), -2)
    w, h = high[..., 0] - low[..., 0], high[..., 1] - low[..., 1]
    w, h = (
        tf.where(w < aspect_ratio * h, h * aspect_ratio, w),
        tf.where(w > aspect_ratio * h, w / aspect_ratio, h),
    )
    half_scale = tf.stack([w, h], -1) / PIXEL_STD * config.half_body_padding
    # Also refuse a zero-size box (coincident joints), which the official
    # code would turn into a singular transform.
    use = (enabled & (count >= 2) & (w > 0))[..., None]
    return (
        tf.where(use, half_center, center),
        tf.where(use, half_scale, scale),
    )
