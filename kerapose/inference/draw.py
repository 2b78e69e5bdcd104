"""Drawing people and skeletons on images (OpenCV)."""

import cv2
import numpy as np

_PALETTE = [
    (255, 128, 0), (255, 153, 51), (255, 178, 102), (230, 230, 0),
    (255, 153, 255), (153, 204, 255), (255, 102, 255), (255, 51, 255),
    (102, 178, 255), (51, 153, 255), (255, 153, 153), (255, 102, 102),
    (255, 51, 51), (153, 255, 153), (102, 255, 102), (51, 255, 51),
    (0, 255, 0), (0, 0, 255), (255, 0, 0),
]  # fmt: skip


def draw_poses(
    image,
    keypoints,
    keypoint_scores,
    skeleton,
    boxes=None,
    threshold=0.3,
    track_ids=None,
):
    """Returns a copy of an RGB image with skeletons (and boxes) drawn.

    Args:
        image: (H, W, 3) RGB uint8.
        keypoints: (N, K, 2) pixel coordinates.
        keypoint_scores: (N, K). Joints at or below `threshold` are skipped.
        skeleton: pairs of 0-based keypoint indices.
        boxes: optional (N, 4) boxes as (x, y, w, h).
        threshold: float. Score a joint must exceed to be drawn.
            Defaults to 0.3.
        track_ids: optional (N,) ints, written at each box's top-left
            corner (at the first keypoint without boxes).
    """
    canvas = np.ascontiguousarray(image).copy()
    size = max(canvas.shape[:2])
    thickness = max(1, size // 300)
    radius = max(2, size // 200)
    for n, (points, scores) in enumerate(zip(keypoints, keypoint_scores)):
        if boxes is not None:
            x, y, w, h = (int(round(v)) for v in boxes[n])
            cv2.rectangle(canvas, (x, y), (x + w, y + h), (255, 255, 255), 1)
        for i, (a, b) in enumerate(skeleton):
            if scores[a] > threshold and scores[b] > threshold:
                pa = tuple(int(round(v)) for v in points[a])
                pb = tuple(int(round(v)) for v in points[b])
                color = _PALETTE[i % len(_PALETTE)]
                cv2.line(canvas, pa, pb, color, thickness, cv2.LINE_AA)
        for k, point in enumerate(points):
            if scores[k] > threshold:
                center = tuple(int(round(v)) for v in point)
                cv2.circle(canvas, center, radius, (255, 0, 0), -1, cv2.LINE_AA)
        if track_ids is not None:
            anchor = boxes[n][:2] if boxes is not None else points[0]
            x, y = (int(round(v)) for v in anchor)
            cv2.putText(
                canvas,
                str(int(track_ids[n])),
                (x, max(y - 2, 10)),
                cv2.FONT_HERSHEY_SIMPLEX,
                max(0.4, size / 1500),
                (255, 255, 255),
                max(1, thickness // 2),
                cv2.LINE_AA,
            )
    return canvas
