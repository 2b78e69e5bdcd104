"""YOLO-Pose raw head output -> boxes and keypoints in input pixels."""

from keras import ops


def decode_level(raw, anchors, stride):
    """Decodes one level (B, h, w, A, F) with the official rule.

    Args:
        raw: tensor (B, h, w, A, F), F = 6 + 3K:
            [tx, ty, tw, th, obj, cls, (kx, ky, kconf) x K], logits.
        anchors: (A, 2) anchor (w, h) in input pixels.
        stride: int. The level's stride in input pixels.

    Returns:
        (B, h, w, A, F): centre x, y and w, h in input pixels, sigmoid
        objectness and class, keypoint x, y in input pixels and sigmoid
        keypoint confidence.
    """
    raw = ops.convert_to_tensor(raw)
    dtype = raw.dtype
    shape = ops.shape(raw)
    h, w, fields = shape[1], shape[2], raw.shape[-1]
    num_kpt = (fields - 6) // 3
    # grid (x = column, y = row), broadcast over batch and anchors.
    xs = ops.cast(ops.arange(w), dtype)
    ys = ops.cast(ops.arange(h), dtype)
    grid_x = ops.reshape(xs, (1, 1, -1, 1, 1))
    grid_y = ops.reshape(ys, (1, -1, 1, 1, 1))
    grid = ops.concatenate(
        [
            ops.broadcast_to(grid_x, (1, h, w, 1, 1)),
            ops.broadcast_to(grid_y, (1, h, w, 1, 1)),
        ],
        axis=-1,
    )
    stride = ops.cast(stride, dtype)
    anchors = ops.reshape(ops.cast(anchors, dtype), (1, 1, 1, -1, 2))

    det = ops.sigmoid(raw[..., :6])
    xy = (det[..., 0:2] * 2.0 - 0.5 + grid) * stride
    wh = ops.square(det[..., 2:4] * 2.0) * anchors
    kpt = ops.reshape(raw[..., 6:], (-1, h, w, shape[3], num_kpt, 3))
    kpt_xy = (kpt[..., 0:2] * 2.0 - 0.5 + grid[..., None, :]) * stride
    kpt_conf = ops.sigmoid(kpt[..., 2:3])
    kpt = ops.reshape(
        ops.concatenate([kpt_xy, kpt_conf], axis=-1),
        (-1, h, w, shape[3], 3 * num_kpt),
    )
    return ops.concatenate([xy, wh, det[..., 4:6], kpt], axis=-1)


def decode_levels(raw_levels, anchors, strides):
    """Decodes and flattens every level into one row per anchor box.

    Args:
        raw_levels: list of tensors (B, h_l, w_l, A, F), the raw output of
            `YOLOPoseEstimator`.
        anchors: per level, (A, 2) anchor (w, h) in input pixels.
        strides: per level, the stride in input pixels.

    Returns:
        (B, R, F), R = sum of h_l * w_l * A, rows in (level, y, x, anchor)
        order; columns as in `decode_level`.
    """
    if not (len(raw_levels) == len(anchors) == len(strides)):
        raise ValueError(
            "`raw_levels`, `anchors` and `strides` need one entry per level. "
            f"Received {len(raw_levels)}, {len(anchors)} and {len(strides)}."
        )
    rows = []
    for raw, level_anchors, stride in zip(raw_levels, anchors, strides):
        decoded = decode_level(raw, level_anchors, stride)
        rows.append(
            ops.reshape(decoded, (ops.shape(decoded)[0], -1, decoded.shape[-1]))
        )
    return ops.concatenate(rows, axis=1)
