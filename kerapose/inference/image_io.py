"""Reading images for inference, with errors that say what went wrong."""

from pathlib import Path

import cv2
import numpy as np


def read_image(image) -> np.ndarray:
    """Returns an RGB uint8 (H, W, 3) array from a path or an array.

    Float arrays whose maximum is at most 1 are read as 0-1 images (the
    convention of float images in scikit-image, Matplotlib and
    `tf.image`) and scaled by 255; other float arrays as 0-255. Values
    outside 0-255 are clipped.

    Args:
        image: path to an image file, or an (H, W, 3) RGB / (H, W) grey
            array (uint8; float in [0, 1] or [0, 255]).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not a decodable image, or the array has
            the wrong shape, no pixels or NaN / infinite values.
    """
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"Image file not found: {path}")
        data = np.fromfile(path, np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if bgr is None:
            raise ValueError(
                f"Cannot decode {path}: the file is empty, truncated or not "
                "an image (JPEG, PNG, BMP, ... are supported)."
            )
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(
            "Expected an (H, W, 3) RGB image array. Received shape "
            f"{array.shape}."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"The image array is empty: shape {array.shape}.")
    if array.dtype != np.uint8:
        array = _to_uint8(array[..., :3])
    return np.ascontiguousarray(array[..., :3])


def _to_uint8(array):
    values = array.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("The image array has NaN or infinite values.")
    if np.issubdtype(array.dtype, np.floating) and values.max() <= 1.0:
        values = values * 255.0  # a 0-1 float image
    return np.rint(np.clip(values, 0, 255)).astype(np.uint8)
