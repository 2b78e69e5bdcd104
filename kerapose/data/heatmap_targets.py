"""TensorFlow twin of :meth:`kerapose.codecs.MSRAHeatmap.encode`.

Runs inside ``tf.data`` maps (no Python per sample) and gives the same
heatmaps and weights as the NumPy reference, including its rounding
(``int(x / stride + 0.5)``, truncating toward zero) and its rule that a
keypoint whose Gaussian lies wholly outside the heatmap gets weight 0.

Shape letters: K keypoints, (h, w) heatmap.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from kerapose.codecs.msra_heatmap import MSRAHeatmap

__all__ = ["encode_heatmaps_tf"]

# Coordinates are clipped to this before the float -> int cast, which is
# undefined for huge values; anything this far out gets weight 0 anyway.
_COORD_LIMIT = 1.0e6


def encode_heatmaps_tf(
    keypoints: Any, visible: Any, codec: MSRAHeatmap
) -> tuple[tf.Tensor, tf.Tensor]:
    """Encodes instances as Gaussian heatmaps (graph-safe).

    One instance or a batch (any leading dims ``...``): a whole batch in
    one call costs a handful of ops instead of a handful per instance.

    Args:
        keypoints: (..., K, 2) (x, y) in network-input pixels.
        visible: (..., K); > 0 means labelled.
        codec: The :class:`~kerapose.codecs.MSRAHeatmap` to match.

    Returns:
        ``heatmaps`` (..., h, w, K) and ``keypoint_weights`` (..., K),
        float32.
        Unlabelled keypoints and those whose Gaussian misses the heatmap
        get weight 0 and an all-zero heatmap.
    """
    h, w = codec.heatmap_size
    stride_y, stride_x = codec.stride
    sigma = codec.sigma
    radius = 3.0 * sigma
    keypoints = tf.cast(keypoints, tf.float32)
    labelled = tf.cast(visible, tf.float32) > 0
    # Unlabelled coordinates can be anything (even NaN); park them at 0.
    keypoints = tf.where(labelled[..., None], keypoints, 0.0)
    keypoints = tf.clip_by_value(keypoints, -_COORD_LIMIT, _COORD_LIMIT)
    mu_x = keypoints[..., 0] / stride_x
    mu_y = keypoints[..., 1] / stride_y
    if not getattr(codec, "unbiased", False):
        # Same float32 arithmetic as the reference, then truncation like
        # int(); the unbiased (DARK) encoding keeps the sub-pixel centre.
        mu_x = tf.cast(tf.cast(mu_x + 0.5, tf.int32), tf.float32)
        mu_y = tf.cast(tf.cast(mu_y + 0.5, tf.int32), tf.float32)
    in_bounds = ~(
        (mu_x - radius >= w)
        | (mu_y - radius >= h)
        | (mu_x + radius + 1 < 0)
        | (mu_y + radius + 1 < 0)
    )
    weights = tf.cast(labelled & in_bounds, tf.float32)

    dx = tf.range(w, dtype=tf.float32)[:, None] - mu_x[..., None, :]
    dy = tf.range(h, dtype=tf.float32)[:, None] - mu_y[..., None, :]
    # The Gaussian is separable: exp(a + b) = exp(a) * exp(b) costs h + w
    # exponentials per keypoint instead of h * w, and differs from the
    # reference by float32 rounding only (~1e-7).
    denom = 2.0 * sigma**2
    gx = tf.where(tf.abs(dx) <= radius, tf.exp(-tf.square(dx) / denom), 0.0)
    gy = tf.where(tf.abs(dy) <= radius, tf.exp(-tf.square(dy) / denom), 0.0)
    # (..., h, 1, K) * (..., 1, w, K)
    heatmaps = (
        gy[..., :, None, :] * (gx * weights[..., None, :])[..., None, :, :]
    )
    return heatmaps, weights
