"""Training targets of bottom-up estimators, in TensorFlow ops.

The official HigherHRNet / Associative Embedding generators, for one image
with every person at once: multi-person Gaussian heatmaps (the maximum
over people), the flat joint indices the tag loss gathers at, and the
ignore mask (crowds, people without keypoints) warped like the image.

Keypoints are rounded as officially: ``int(x)``, truncation toward zero,
so a point at x = -0.5 still lands in column 0.

Shape letters: P people (padded), K keypoints, (h, w) output map,
(H, W) source image.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tensorflow as tf

from kerapose.data.transforms import warp_inverse

__all__ = [
    "decode_ignore_mask",
    "encode_joint_indices",
    "encode_multi_person_heatmaps",
    "ignore_regions_to_runs",
    "warp_mask",
]

# Coordinates are clipped to this before the float -> int cast, which is
# undefined for huge values; anything this far out is outside every map.
_COORD_LIMIT = 1.0e6


def _truncate(points):
    """``int(x)`` of the official generators, as int32."""
    points = tf.clip_by_value(points, -_COORD_LIMIT, _COORD_LIMIT)
    return tf.cast(points, tf.int32)  # truncates toward zero


def _inside(keypoints, labelled, size):
    """Integer (x, y) and the official "labelled and inside the map" test."""
    h, w = size
    xy = _truncate(tf.cast(keypoints, tf.float32))
    x, y = xy[..., 0], xy[..., 1]
    inside = (x >= 0) & (y >= 0) & (x < w) & (y < h)
    return x, y, inside & (tf.cast(labelled, tf.float32) > 0)


def encode_multi_person_heatmaps(
    keypoints: Any, labelled: Any, size: tuple[int, int], sigma: float = 2.0
) -> tf.Tensor:
    """The official ``HeatmapGenerator``: one Gaussian per person, max'ed.

    Each labelled keypoint whose truncated position lies inside the map
    stamps the official ``(6 sigma + 3)``-wide square patch, centred on the
    integer position, and the map keeps the maximum over people.

    Args:
        keypoints: (P, K, 2) (x, y) in output-map pixels.
        labelled: (P, K); > 0 means labelled.
        size: ``(h, w)`` of the map.
        sigma: Gaussian sigma in map pixels (official 2).

    Returns:
        (h, w, K) float32 heatmaps in [0, 1].
    """
    h, w = size
    x, y, valid = _inside(keypoints, labelled, size)
    num_kpts = x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1]
    # The official patch: g over [0, size) centred at 3 sigma + 1, placed
    # from round(x - 3 sigma - 1) up to (excluding) round(x + 3 sigma + 2).
    length = len(np.arange(0, 6 * sigma + 3, 1, float))
    centre = 3.0 * sigma + 1.0
    steps = tf.range(length, dtype=tf.float32)
    profile = tf.exp(-tf.square(steps - centre) / (2.0 * sigma**2))

    def axis(coord, limit):
        coord = tf.cast(coord, tf.float32)[..., None]
        start = tf.round(coord - 3.0 * sigma - 1.0)  # half to even, as np
        stop = tf.round(coord + 3.0 * sigma + 2.0)
        pos = start + steps
        ok = (pos >= 0) & (pos < limit) & (pos < stop)
        return tf.cast(tf.clip_by_value(pos, 0, limit - 1), tf.int32), ok

    # Only the stamped joints (a few people, not the padded P) are
    # scattered: N = their count.
    where = tf.where(valid)  # (N, 2) [person, joint]
    cols, ok_x = axis(tf.gather_nd(x, where), w)  # (N, L)
    rows, ok_y = axis(tf.gather_nd(y, where), h)
    ok = ok_y[:, :, None] & ok_x[:, None, :]
    values = profile[:, None] * profile[None, :]  # (L, L): [row, col]
    values = tf.where(ok, values, 0.0)  # (N, L, L)
    shape = tf.shape(values)
    kpt = tf.cast(where[:, 1], tf.int32)[:, None, None]
    indices = tf.stack(
        [
            tf.broadcast_to(rows[:, :, None], shape),
            tf.broadcast_to(cols[:, None, :], shape),
            tf.broadcast_to(kpt, shape),
        ],
        axis=-1,
    )
    # Entries outside the patch carry 0 to a clamped pixel: max() keeps
    # what is there.
    heatmaps = tf.zeros(tf.stack([h, w, num_kpts]), tf.float32)
    return tf.tensor_scatter_nd_max(
        heatmaps, tf.reshape(indices, [-1, 3]), tf.reshape(values, [-1])
    )


def encode_joint_indices(
    keypoints: Any, labelled: Any, size: tuple[int, int]
) -> tf.Tensor:
    """The official ``JointsGenerator`` with one tag map per joint.

    Args:
        keypoints: (P, K, 2) (x, y) in pixels of the tag map.
        labelled: (P, K); > 0 means labelled.
        size: ``(h, w)`` of the tag map.

    Returns:
        (P, K, 2) int32 ``[y * w + x, 1]`` for labelled joints inside the
        map, ``[0, 0]`` otherwise. The joint's map is its position k (the
        official flat index adds ``k * h * w``).
    """
    x, y, valid = _inside(keypoints, labelled, size)
    index = tf.where(valid, y * size[1] + x, 0)
    return tf.stack([index, tf.cast(valid, tf.int32)], axis=-1)


def ignore_regions_to_runs(regions: str, height: int, width: int) -> np.ndarray:
    """The official ``get_mask`` regions as run lengths (host side, NumPy).

    The union of the regions, run-length encoded in COCO's order (column
    by column, starting with a run of uncovered pixels), so the pipeline
    decodes it with TensorFlow ops (:func:`decode_ignore_mask`) instead
    of calling Python per image.

    Args:
        regions: JSON list of COCO segmentations (polygons, or RLE with
            list or compressed counts), as in the ``ignore_regions``
            column of :func:`~kerapose.data.coco_images.load_coco_images`.
        height: Image height.
        width: Image width.

    Returns:
        (R,) int32 run lengths summing to ``height * width``.
    """
    height, width = int(height), int(width)
    segmentations = json.loads(regions)
    if not segmentations:
        return np.array([height * width], np.int32)
    from pycocotools import mask as mask_utils

    covered = np.zeros((height, width), bool)
    for segmentation in segmentations:
        if isinstance(segmentation, list):  # polygons
            rles = mask_utils.frPyObjects(segmentation, height, width)
            covered |= mask_utils.decode(rles).any(axis=-1)
            continue
        rle = segmentation
        if isinstance(segmentation.get("counts"), list):  # uncompressed
            rle = mask_utils.frPyObjects(segmentation, height, width)
        elif isinstance(rle["counts"], str):
            rle = dict(rle, counts=rle["counts"].encode("ascii"))
        covered |= mask_utils.decode(rle).astype(bool)
    flat = covered.flatten(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    runs = np.diff(bounds)
    if flat[0]:  # runs start with uncovered pixels
        runs = np.concatenate([[0], runs])
    return runs.astype(np.int32)


def decode_ignore_mask(runs: Any, height: Any, width: Any) -> tf.Tensor:
    """Run lengths of :func:`ignore_regions_to_runs` -> the loss mask.

    Args:
        runs: (R,) run lengths, column-major, uncovered first.
        height: Image height.
        width: Image width.

    Returns:
        (height, width) uint8, 1 where the loss counts, 0 in the regions.
    """
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    ends = tf.cumsum(tf.cast(runs, tf.int32))
    # Pixel (y, x) is number x * height + y; the run it falls in is the
    # count of run ends at or before it, and odd runs are covered.
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    index = tf.reshape(cols * height + rows, [-1])
    run = tf.searchsorted(ends, index, side="right")
    counts = tf.cast(run % 2 == 0, tf.uint8)
    return tf.reshape(counts, tf.stack([height, width]))


def warp_mask(mask: Any, inverse: Any, size: tuple[int, int]) -> tf.Tensor:
    """Warps a 0/1 mask like the official code: bilinear, then > 0.5.

    Outside the image the warp reads 0, so padding is ignored too, as
    officially.

    Args:
        mask: (H, W) mask, 1 = counts.
        inverse: (2, 3) output (x, y, 1) -> image (x, y) matrix.
        size: ``(h, w)`` of the output.

    Returns:
        (h, w) float32 of 0 and 1.
    """
    warped = warp_inverse(tf.convert_to_tensor(mask)[..., None], inverse, size)
    return tf.cast(warped[..., 0] > 0.5, tf.float32)
