"""Protocol choices shared by the evaluation entry points.

The OKS scale (`use_area`), the CrowdPose crowd levels and the check for
non-finite predictions, kept apart so top-down, bottom-up or single-stage
evaluation reuse them unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "CROWD_INDEX_SPLITS",
    "CROWD_METRIC_NAMES",
    "check_finite_predictions",
    "crowd_levels",
    "resolve_use_area",
]

# Extra metrics of CrowdPose-format files (images carrying `crowdIndex`):
# AP over the images of each crowd level.
CROWD_METRIC_NAMES = ("AP_easy", "AP_medium", "AP_hard")

# Crowd-index bounds of the levels in the official CrowdPose evaluation
# code, which produced the published numbers: easy below 0.2, medium from
# 0.2 to below 0.8, hard from 0.8 (0.1 is sometimes quoted for the first).
CROWD_INDEX_SPLITS = (0.2, 0.8)

_MAX_ROWS_IN_ERROR = 5


def resolve_use_area(use_area: bool | None, spec: Any = None) -> bool:
    """The `use_area` an evaluation runs with.

    Args:
        use_area: True (OKS scale is the ground-truth `area`, the COCO
            protocol), False (0.53 times the ground-truth box area, the
            official CrowdPose and AIC protocols) or None (from `spec`).
        spec: Keypoint spec; its `use_area` (False where the official
            protocol uses 0.53 * w * h) sets the default. A spec without
            it, or no spec, means the COCO protocol.

    Returns:
        The `use_area` value for `COCOEvaluator`.

    Raises:
        ValueError: If `use_area` is not True, False or None.
    """
    if use_area is None:
        return bool(getattr(spec, "use_area", True))
    flag = isinstance(use_area, (bool, np.bool_, int, np.integer))
    if not flag or use_area not in (0, 1):
        raise ValueError(
            f"use_area must be True, False or None (from the keypoint "
            f"spec), got {use_area!r}"
        )
    return bool(use_area)


def check_finite_predictions(
    image_ids: list, arrays: Mapping[str, np.ndarray], offset: int = 0
) -> None:
    """Raises a ValueError naming the predictions with NaN / inf values.

    Args:
        image_ids: (N,) image id of each prediction.
        arrays: `{name: (N, ...) array}` to check, e.g. keypoints, scores.
        offset: Added to the row numbers in the message (predictions
            accumulated before this batch).

    Raises:
        ValueError: Naming the first offending rows, their image ids and
            fields, and how many rows are affected.
    """
    n = len(image_ids)
    bad_fields: dict[int, list[str]] = {}
    for name, arr in arrays.items():
        rows = ~np.isfinite(np.asarray(arr).reshape(n, -1)).all(axis=1)
        for i in np.flatnonzero(rows).tolist():
            bad_fields.setdefault(i, []).append(name)
    if not bad_fields:
        return
    rows = sorted(bad_fields)
    parts = [
        f"prediction {offset + i} (image id {image_ids[i]!r}: "
        f"{', '.join(bad_fields[i])})"
        for i in rows[:_MAX_ROWS_IN_ERROR]
    ]
    more = len(rows) - _MAX_ROWS_IN_ERROR
    text = "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    raise ValueError(
        f"NaN or infinite values in {len(rows)} prediction(s): {text}. "
        "Drop or fix these rows before evaluating (a diverged model or a "
        "failed decode produces them)."
    )


def crowd_levels(dataset: dict, source: str) -> dict[str, list] | None:
    """Image ids per CrowdPose crowd level.

    Args:
        dataset: COCO-format dict whose `images` may carry `crowdIndex`.
        source: The file name, for messages.

    Returns:
        `{"AP_easy": [ids], "AP_medium": [ids], "AP_hard": [ids]}`, or None
        when no image has a crowd index, or (with a warning) only some do.

    Raises:
        ValueError: On a non-numeric crowd index, naming the image.
    """
    images = dataset["images"]
    tagged = [img for img in images if "crowdIndex" in img]
    if not tagged:
        return None
    if len(tagged) < len(images):
        warnings.warn(
            f"{source}: {len(images) - len(tagged)} of {len(images)} images "
            "have no 'crowdIndex'; AP_easy / AP_medium / AP_hard are left "
            "out",
            UserWarning,
            stacklevel=3,
        )
        return None
    low, high = CROWD_INDEX_SPLITS
    splits = {name: [] for name in CROWD_METRIC_NAMES}
    for img in images:
        value = img["crowdIndex"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(
                f"{source}: image id {img['id']!r} has a non-numeric "
                f"crowdIndex {value!r}"
            )
        if value < low:
            level = "AP_easy"
        elif value < high:
            level = "AP_medium"
        else:
            level = "AP_hard"
        splits[level].append(img["id"])
    return splits
