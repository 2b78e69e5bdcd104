"""Reference pre- and post-processing for exported TFLite pose models.

What a mobile app ports: crop a person box to the network input, run the
.tflite file, decode its heatmaps (argmax + quarter-pixel shift) and map
the keypoints back to the image. NumPy only (OpenCV for the crop warp),
and no kerapose or Keras import, so the file can be copied into an app or
loaded on its own (`examples/tflite_infer.py` does). Tests hold it equal to
the Keras codec and the kerapose inference path.

Shapes: N people, K keypoints, (H, W) network input, (h, w) heatmap.
"""

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
PIXEL_STD = 200.0  # box scales are in units of 200 pixels
BOX_PADDING = 1.25  # context added around a person box
# COCO's 17-keypoint skeleton, 0-based keypoint index pairs.
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12),
    (5, 6), (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2),
    (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip


def box_to_center_scale(box, input_size, padding=BOX_PADDING):
    """Box `(x, y, w, h)` -> centre (2,) and scale (2,) at the input's
    aspect ratio, in units of 200 pixels."""
    x, y, w, h = (float(v) for v in box[:4])
    aspect = input_size[1] / input_size[0]
    center = np.array([x + w * 0.5, y + h * 0.5])
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return center, np.array([w, h]) / PIXEL_STD * padding


def crop_matrix(center, scale, input_size):
    """2x3 matrix mapping image pixels to crop pixels (no rotation)."""
    out_h, out_w = input_size
    zoom = out_w / (float(scale[0]) * PIXEL_STD)
    offset = np.array([out_w * 0.5, out_h * 0.5]) - zoom * np.asarray(
        center, np.float64
    )
    return np.array([[zoom, 0.0, offset[0]], [0.0, zoom, offset[1]]])


def preprocess(image, box, input_size):
    """Crops one person box from an RGB uint8 image.

    Returns:
        the (1, H, W, 3) float32 network input (ImageNet-normalised) and
        the 2x3 crop -> image matrix for `keypoints_to_image`.
    """
    import cv2

    center, scale = box_to_center_scale(box, input_size)
    matrix = crop_matrix(center, scale, input_size)
    crop = cv2.warpAffine(
        image, matrix, (input_size[1], input_size[0]), flags=cv2.INTER_LINEAR
    )
    crop = (crop.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return crop[None], cv2.invertAffineTransform(matrix)


def decode_heatmaps(heatmaps, input_size):
    """Argmax + quarter-pixel shift, as `kerapose.codecs.MSRAHeatmap`.

    Args:
        heatmaps: (N, h, w, K) array.
        input_size: `(H, W)` of the network input.

    Returns:
        (N, K, 3) float32 `(x, y, score)`, `x, y` in input pixels; a
        keypoint whose maximum is not positive is put at (0, 0).
    """
    heatmaps = np.asarray(heatmaps, np.float32)
    n, h, w, k = heatmaps.shape
    flat = heatmaps.transpose(0, 3, 1, 2).reshape(n, k, h * w)
    idx = flat.argmax(axis=-1)
    scores = flat.max(axis=-1)
    px, py = idx % w, idx // w

    def at(dx, dy):
        j = np.clip(py + dy, 0, h - 1) * w + np.clip(px + dx, 0, w - 1)
        return np.take_along_axis(flat, j[..., None], axis=-1)[..., 0]

    # The shift needs both neighbours, so not on the two outer pixels.
    interior = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    dx = np.sign(at(1, 0) - at(-1, 0)) * 0.25 * interior
    dy = np.sign(at(0, 1) - at(0, -1)) * 0.25 * interior
    found = scores > 0
    x = (px + dx) * (input_size[1] / w) * found
    y = (py + dy) * (input_size[0] / h) * found
    return np.stack([x, y, scores], axis=-1).astype(np.float32)


def keypoints_to_image(keypoints, inverse_matrix):
    """Maps (..., K, 3) crop keypoints `(x, y, score)` to image pixels."""
    keypoints = np.array(keypoints, np.float32)
    xy = keypoints[..., :2] @ inverse_matrix[:, :2].T + inverse_matrix[:, 2]
    keypoints[..., :2] = xy
    return keypoints


def postprocess(output, input_size, inverse_matrix):
    """Exported model output -> (K, 3) `(x, y, score)` in image pixels.

    Takes either output layout: heatmaps (1, h, w, K), or in-graph decoded
    keypoints (1, K, 3).
    """
    output = np.asarray(output, np.float32)
    if output.ndim == 4:
        output = decode_heatmaps(output, input_size)
    return keypoints_to_image(output[0], inverse_matrix)
