"""Reading images for inference, with errors that say what went wrong."""

from pathlib import Path

import cv2
import numpy as np


def read_image(image) -> np.ndarray:
    """Returns an RGB uint8 (H, W, 3) array from a path or an array.

    Args:
        image: path to an image file, or an (H, W, 3) RGB / (H, W) grey
            array (uint8, or float in [0, 255]).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not a decodable image, or the array has
            the wrong shape.
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
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array[..., :3])
