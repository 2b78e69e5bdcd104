"""Crop geometry in NumPy for inference and for mapping predictions back.

Same transform as the training pipeline (`kerapose.data.transforms`): the
person box (`center`, `scale` in units of 200 px) rotated by `rotation`
degrees maps onto the network input; only `scale[0]` sets the zoom, as in
the official HRNet code. Integer coordinates are pixel centres (OpenCV).
"""

import numpy as np

from kerapose.data.coco import PIXEL_STD


def crop_matrix(center, scale, rotation, output_size, inverse=False):
    """2x3 matrix mapping image pixels to crop pixels (or back).

    Args:
        center: (2,) box centre (x, y).
        scale: (2,) box size (w, h) / 200.
        rotation: float. Degrees, counter-clockwise.
        output_size: `(H, W)` of the crop.
        inverse: bool. Return the crop -> image matrix instead.
    """
    out_h, out_w = output_size
    zoom = out_w / (float(scale[0]) * PIXEL_STD)
    theta = np.deg2rad(rotation)
    cos, sin = np.cos(theta) * zoom, np.sin(theta) * zoom
    # The official construction sends the box's rotated "up" direction to
    # the crop's up; with y pointing down that is this matrix.
    linear = np.array([[cos, sin], [-sin, cos]])
    offset = np.array([out_w * 0.5, out_h * 0.5]) - linear @ np.asarray(
        center, np.float64
    )
    matrix = np.concatenate([linear, offset[:, None]], axis=1)
    if inverse:
        inv = np.linalg.inv(linear)
        matrix = np.concatenate([inv, (-inv @ offset)[:, None]], axis=1)
    return matrix


def apply_matrix(points, matrix):
    """Applies a 2x3 matrix to (..., 2) points."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]
