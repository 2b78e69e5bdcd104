"""Drawing against golden images; grid and heatmap overlay."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from kerapose.data.keypoint_specs import COCO_17
from kerapose.inference.draw import draw_grid
from kerapose.inference.draw import draw_poses
from kerapose.inference.draw import overlay_heatmaps

GOLDEN = Path(__file__).parent / "golden"
# A standing person, (x, y) per COCO joint, in a 128x96 image.
POSE = np.array(
    [[48, 14], [51, 11], [45, 11], [55, 13], [41, 13], [60, 28], [36, 28],
     [66, 44], [30, 44], [68, 58], [28, 58], [56, 60], [40, 60], [58, 82],
     [38, 82], [60, 104], [36, 104]],
    np.float32,
)  # fmt: skip


def _background():
    y, x = np.mgrid[0:128, 0:96]
    return np.stack([x * 2, y * 2, np.full_like(x, 60)], -1).astype(np.uint8)


def _drawn():
    scores = np.full((1, 17), 0.9, np.float32)
    scores[0, 3] = 0.1  # under the threshold: not drawn
    return draw_poses(
        _background(),
        POSE[None],
        scores,
        COCO_17.skeleton,
        boxes=np.array([[24, 6, 48, 104]], np.float32),
        threshold=0.3,
        track_ids=np.array([7]),
    )


def _close(image, name):
    golden = cv2.cvtColor(cv2.imread(str(GOLDEN / name)), cv2.COLOR_BGR2RGB)
    assert golden.shape == image.shape
    # Anti-aliased edges may differ by an OpenCV version: a small tolerance.
    far = np.abs(golden.astype(int) - image.astype(int)).max(-1) > 48
    assert far.mean() < 0.005, f"{far.sum()} pixels differ from {name}"


def test_skeleton_matches_the_golden_image():
    image = _drawn()
    _close(image, "pose.png")
    # The low-score joint (left ear) is not drawn: background there.
    x, y = POSE[3].astype(int)
    np.testing.assert_array_equal(image[y, x], _background()[y, x])


def test_grid_and_overlay_match_the_golden_images():
    grid = draw_grid([_drawn(), _background(), _drawn()], cell=(64, 48))
    assert grid.shape == (2 * 64 + 2, 2 * 48 + 2, 3)
    _close(grid, "grid.png")
    heatmaps = np.zeros((32, 24, 17), np.float32)
    heatmaps[8, 12, 0] = 1.0
    heatmaps = cv2.GaussianBlur(heatmaps, (7, 7), 2.0)
    heatmaps /= heatmaps.max()
    _close(overlay_heatmaps(_background(), heatmaps), "overlay.png")


def test_bad_drawing_inputs_are_named():
    with pytest.raises(ValueError, match="at least one"):
        draw_grid([])
    with pytest.raises(ValueError, match="heatmaps"):
        overlay_heatmaps(_background(), np.zeros((32, 24)))
