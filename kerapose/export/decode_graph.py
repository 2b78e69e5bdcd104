"""The codec's keypoint decode as a graph of TFLite builtin operators.

`MSRAHeatmap.decode` is written in `keras.ops` for every backend, but on
TensorFlow `keras.ops.argmax` of a float tensor guards against negative
zero with a bitwise op that TFLite only runs through the Flex delegate.
This graph takes the argmax with `tf.argmax` (the builtin ARG_MAX) and
reuses the codec's own sub-pixel refinement (quarter shift, DARK or the
official RSN second-maximum decode), so the two cannot drift apart; a test
holds them equal.

Shapes: B batch, K keypoints, (h, w) heatmap.
"""

from __future__ import annotations

import tensorflow as tf


def decode_in_graph(heatmaps, codec):
    """(B, h, w, K) heatmaps -> (B, K, 3) `(x, y, score)` in input pixels."""
    _, h, w, k = heatmaps.shape
    flat = tf.reshape(tf.transpose(heatmaps, (0, 3, 1, 2)), (-1, k, h * w))
    if codec.refinement == "second_max":
        keypoints, scores = codec._second_max_decode(
            heatmaps,
            flat,
            h,
            w,
            k,
            argmax=lambda t: tf.argmax(t, axis=-1, output_type=tf.int32),
        )
        return tf.concat([keypoints, scores[..., None]], axis=-1)
    idx = tf.argmax(flat, axis=-1, output_type=tf.int32)
    scores = tf.reduce_max(flat, axis=-1)
    px = idx % w
    py = idx // w
    if codec.refinement == "dark":
        dx, dy = codec._dark_offsets(heatmaps, px, py, h, w, k)
    else:
        dx, dy = codec._quarter_offsets(flat, px, py, h, w)
    stride_y, stride_x = codec.stride
    found = tf.cast(scores > 0, flat.dtype)
    x = (tf.cast(px, flat.dtype) + dx) * stride_x * found
    y = (tf.cast(py, flat.dtype) + dy) * stride_y * found
    return tf.stack([x, y, codec._rescale(scores)], axis=-1)
