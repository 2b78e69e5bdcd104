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


def draw_grid(images, columns=None, cell=(240, 320), pad=2):
    """Tiles RGB images (each resized to fit `cell`, aspect kept) into one.

    Args:
        images: list of (H, W, 3) uint8 arrays, e.g. drawn results.
        columns: images per row. Defaults to the square root, rounded up.
        cell: (height, width) of each tile.
        pad: pixels between tiles (black).
    """
    if not images:
        raise ValueError("draw_grid needs at least one image.")
    n = len(images)
    columns = int(columns or np.ceil(np.sqrt(n)))
    if columns < 1:
        raise ValueError(f"`columns` must be >= 1. Received: {columns}")
    rows = -(-n // columns)
    ch, cw = cell
    grid = np.zeros(
        (rows * ch + (rows - 1) * pad, columns * cw + (columns - 1) * pad, 3),
        np.uint8,
    )
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        scale = min(ch / h, cw / w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        tile = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        y = (i // columns) * (ch + pad) + (ch - size[1]) // 2
        x = (i % columns) * (cw + pad) + (cw - size[0]) // 2
        grid[y : y + size[1], x : x + size[0]] = tile
    return grid


def overlay_heatmaps(image, heatmaps, alpha=0.5):
    """An RGB crop with the maximum over joints of its heatmaps on top.

    For debugging a top-down model: `heatmaps` (h, w, K) of the crop
    (e.g. `predict_heatmaps` output for one person) are upsampled to the
    image, clipped to [0, 1] and blended in as a JET colour map.
    """
    heatmaps = np.asarray(heatmaps, np.float32)
    if heatmaps.ndim != 3:
        raise ValueError(
            "`heatmaps` must be (h, w, K) of one crop. Received shape "
            f"{heatmaps.shape}."
        )
    h, w = image.shape[:2]
    peak = np.clip(heatmaps.max(axis=-1), 0.0, 1.0)
    peak = cv2.resize(peak, (w, h), interpolation=cv2.INTER_LINEAR)
    color = cv2.applyColorMap(np.uint8(peak * 255), cv2.COLORMAP_JET)
    color = cv2.cvtColor(color, cv2.COLOR_BGR2RGB)
    blended = image.astype(np.float32) * (1 - alpha) + color * alpha
    return np.clip(blended, 0, 255).astype(np.uint8)
