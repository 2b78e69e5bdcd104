"""The codec's keypoint decode in TensorFlow ops that are TFLite builtins.

`MSRAHeatmap.decode` is written in `keras.ops` for every backend, but on
TensorFlow `keras.ops.argmax` of a float tensor guards against negative
zero with a bitwise op that TFLite only runs through the Flex delegate.
This graph is the same argmax + quarter-pixel shift with `tf.argmax`
(the builtin ARG_MAX); a test holds it equal to the codec.

Shapes: K keypoints, (h, w) heatmap.
"""

from __future__ import annotations

import tensorflow as tf


def decode_quarter(heatmaps, codec):
    """(B, h, w, K) heatmaps -> (B, K, 3) `(x, y, score)` in input pixels."""
    if getattr(codec, "refinement", "quarter") != "quarter":
        raise ValueError(
            "The in-graph decode supports the codec's 'quarter' refinement; "
            f"this codec uses {codec.refinement!r}. Export with "
            "`include_decode=False` and decode the heatmaps in the app "
            "(kerapose.export.numpy_reference.decode_heatmaps)."
        )
    _, h, w, k = heatmaps.shape
    flat = tf.reshape(tf.transpose(heatmaps, (0, 3, 1, 2)), (-1, k, h * w))
    idx = tf.argmax(flat, axis=-1, output_type=tf.int32)
    scores = tf.reduce_max(flat, axis=-1)
    px = idx % w
    py = idx // w

    def at(dx, dy):
        j = tf.clip_by_value(py + dy, 0, h - 1) * w + tf.clip_by_value(
            px + dx, 0, w - 1
        )
        return tf.gather(flat, j, batch_dims=2)

    interior = tf.cast(
        (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1), flat.dtype
    )
    dx = tf.sign(at(1, 0) - at(-1, 0)) * 0.25 * interior
    dy = tf.sign(at(0, 1) - at(0, -1)) * 0.25 * interior
    stride_y, stride_x = codec.stride
    found = tf.cast(scores > 0, flat.dtype)
    x = (tf.cast(px, flat.dtype) + dx) * stride_x * found
    y = (tf.cast(py, flat.dtype) + dy) * stride_y * found
    return tf.stack([x, y, scores], axis=-1)
