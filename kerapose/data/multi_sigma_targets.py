"""Heatmap targets of any kerapose heatmap codec, in TensorFlow.

`MSRAHeatmap` gives one heatmap per keypoint; `MultiSigmaHeatmap` stacks
one per sigma, coarse to fine, on axis -4 (the unit axis that
`MultiStageHeatmapLoss` reads). Shape letters: T sigmas, K keypoints,
(h, w) heatmap.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from kerapose.data.heatmap_targets import encode_heatmaps_tf

__all__ = ["encode_targets_tf"]


def encode_targets_tf(
    keypoints: Any, visible: Any, codec: Any
) -> tuple[tf.Tensor, tf.Tensor]:
    """Targets of `codec` for (..., K, 2) keypoints and (..., K) labels.

    Returns:
        ``heatmaps`` (..., h, w, K), or (..., T, h, w, K) for a codec with
        ``sigmas``, and ``keypoint_weights`` (..., K) of ``codec.sigma``.
    """
    sigmas = getattr(codec, "sigmas", None)
    if not sigmas:
        return encode_heatmaps_tf(keypoints, visible, codec)
    maps = [
        encode_heatmaps_tf(keypoints, visible, codec.single_sigma(s))[0]
        for s in sigmas
    ]
    _, weights = encode_heatmaps_tf(
        keypoints, visible, codec.single_sigma(codec.sigma)
    )
    return tf.stack(maps, axis=-4), weights
