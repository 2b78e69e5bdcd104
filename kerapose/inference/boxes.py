"""Person boxes for top-down inference: checking them and reading files.

Boxes are `(x, y, w, h)` in image pixels (COCO); an image of height H and
width W covers `[0, W] x [0, H]`.
"""

import json
from pathlib import Path

import numpy as np


def _show(box):
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def validate_boxes(boxes, image_shape) -> np.ndarray:
    """Checks person boxes against an image and clips them to it.

    A box partly outside the image is clipped to it. A box with a NaN or
    infinite value, a width or height of zero or less, or no overlap with
    the image is an error: it has no pixels to crop, yet the model would
    still return keypoints for it.

    Args:
        boxes: (N, 4) array-like of `(x, y, w, h)` in pixels, or one
            `(x, y, w, h)` box.
        image_shape: `(H, W)` or `(H, W, C)` of the image.

    Returns:
        (N, 4) float32 boxes inside the image.

    Raises:
        ValueError: naming the first bad box and what is wrong with it.
    """
    try:
        array = np.asarray(boxes, np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(
            "Person boxes must be numbers of shape (N, 4), as (x, y, w, h) "
            f"in pixels. Received: {boxes!r:.200}"
        ) from e
    if array.ndim == 1 and array.size == 4:
        array = array[None]
    if array.size == 0:
        return np.zeros((0, 4), np.float32)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(
            "Person boxes must have shape (N, 4), as (x, y, w, h) in pixels. "
            f"Received shape {array.shape}."
        )
    height, width = (int(s) for s in image_shape[:2])
    out = np.empty_like(array)
    for i, (x, y, w, h) in enumerate(array):
        name = f"Person box {i} {_show((x, y, w, h))} (x, y, w, h)"
        if not np.all(np.isfinite([x, y, w, h])):
            raise ValueError(f"{name} has a NaN or infinite value.")
        if w <= 0 or h <= 0:
            raise ValueError(
                f"{name} has a width or height of zero or less. Boxes are "
                "(x, y, width, height); convert (x1, y1, x2, y2) corners "
                "with w = x2 - x1, h = y2 - y1."
            )
        x1, y1 = max(x, 0.0), max(y, 0.0)
        x2, y2 = min(x + w, float(width)), min(y + h, float(height))
        if x2 <= x1 or y2 <= y1:
            raise ValueError(
                f"{name} lies wholly outside the {width}x{height} (W x H) "
                "image. Check that the boxes belong to this image and are "
                "in its pixels."
            )
        out[i] = (x1, y1, x2 - x1, y2 - y1)
    return out.astype(np.float32)


def _entry_box(entry, i, path):
    if isinstance(entry, dict):
        if "bbox" not in entry:
            raise ValueError(
                f"{path}: entry {i} is a dict without a 'bbox' key (keys: "
                f"{sorted(entry)}). Expected {{'bbox': [x, y, w, h]}}."
            )
        entry = entry["bbox"]
    if (
        not isinstance(entry, (list, tuple))
        or len(entry) != 4
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            for v in entry
        )
    ):
        raise ValueError(
            f"{path}: entry {i} is not a box of 4 numbers [x, y, w, h]. "
            f"Received: {entry!r:.100}"
        )
    return [float(v) for v in entry]


def read_boxes_file(path):
    """Reads person boxes (and detector scores) from a JSON file.

    Accepted layouts, boxes as `[x, y, w, h]` in image pixels:

    * a list of boxes `[[x, y, w, h], ...]`, or one box `[x, y, w, h]`;
    * COCO detection results: a list of dicts with a `"bbox"` key and
      optionally `"score"` (other keys are ignored), or one such dict.
      All dicts must be of one image (at most one distinct `"image_id"`).

    Args:
        path: str or `Path` of the JSON file.

    Returns:
        boxes (N, 4) float32, and scores (N,) float32 when every entry is
        a dict with a `"score"`, else `None`. Boxes are not checked
        against an image here: `validate_boxes` does that.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: invalid JSON or layout; the message names the file
            and the entry.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Boxes file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if isinstance(data, dict) or (
        isinstance(data, list)
        and len(data) == 4
        and all(isinstance(v, (int, float)) for v in data)
    ):
        data = [data]
    if not isinstance(data, list):
        raise ValueError(
            f"{path} must hold a list of [x, y, w, h] boxes or of "
            f"{{'bbox': [x, y, w, h], 'score': s}} dicts. Received a "
            f"{type(data).__name__}."
        )
    boxes = [_entry_box(entry, i, path) for i, entry in enumerate(data)]
    dicts = [e for e in data if isinstance(e, dict)]
    images = {e["image_id"] for e in dicts if "image_id" in e}
    if len(images) > 1:
        raise ValueError(
            f"{path} holds boxes of {len(images)} images (image_id "
            f"{sorted(images, key=str)[:5]}...); give the boxes of one image."
        )
    scores = None
    with_score = [isinstance(e, dict) and "score" in e for e in data]
    if data and all(with_score):
        try:
            scores = np.asarray([e["score"] for e in data], np.float32)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: a 'score' is not a number.") from e
    elif any(with_score):
        raise ValueError(
            f"{path}: {sum(with_score)} of {len(data)} entries have a "
            "'score'; give a score to every box or to none."
        )
    return np.asarray(boxes, np.float32).reshape(-1, 4), scores
