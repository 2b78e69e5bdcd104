"""MSRAHeatmap's official-RSN decode and box padding against the NumPy
description of the official test (`kerapose.testing.official_reference`)."""

import keras
import numpy as np
import pytest

from kerapose.codecs import MSRAHeatmap
from kerapose.data.coco import box_to_center_scale
from kerapose.testing import official_reference as official

INPUT = (64, 48)
HEATMAP = (16, 12)


def peaked_maps():
    """(3, h, w, 4): clear peaks with a neighbour bump, edge peaks, an
    all-negative map and an all-zero one (the zero frame then wins)."""
    h, w = HEATMAP
    ys, xs = np.mgrid[0:h, 0:w]
    maps = np.zeros((3, h, w, 4))
    centres = [(3, 4), (0, 11), (15, 0), (8, 6), (2, 2), (14, 10)]
    for n in range(3):
        for j in range(2):
            cy, cx = centres[(n + j) % len(centres)]
            maps[n, ..., j] = 200 * np.exp(
                -((ys - cy) ** 2 + (xs - cx) ** 2) / 4.5
            ) + 60 * np.exp(-((ys - cy - 2) ** 2 + (xs - cx + 1) ** 2) / 2)
    maps[:, ..., 2] = -3.0 - np.abs(np.sin(xs + 2 * ys))
    return maps.astype("float32")


def test_second_max_decode_matches_official_test():
    maps = peaked_maps()
    codec = MSRAHeatmap(
        INPUT,
        HEATMAP,
        refinement="second_max",
        blur_kernel_size=5,
        score_scale=1 / 255,
        score_offset=0.5,
    )
    keypoints, scores = codec.decode(maps)
    keypoints = keras.ops.convert_to_numpy(keypoints)
    scores = keras.ops.convert_to_numpy(scores)
    # An identity box: image pixels are input pixels.
    h, w = INPUT
    centers = np.tile([[w / 2, h / 2]], (3, 1))
    scales = np.tile([[w / 200, h / 200]], (3, 1))
    expected, expected_scores = official.decode_rsn(
        maps, centers, scales, INPUT
    )
    np.testing.assert_allclose(keypoints, expected, atol=1e-3)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    # Half-pixel offset: never the bare grid.
    assert np.all((keypoints % 4) != 0)


def test_second_max_differs_from_quarter_decode():
    maps = peaked_maps()
    plain = MSRAHeatmap(INPUT, HEATMAP).decode(maps)[0]
    blurred = MSRAHeatmap(INPUT, HEATMAP, refinement="second_max").decode(maps)[
        0
    ]
    gap = np.abs(
        keras.ops.convert_to_numpy(plain) - keras.ops.convert_to_numpy(blurred)
    )
    assert gap[:, :2].max() > 1.0


def test_box_padding_per_axis_is_the_official_rsn_box():
    box = (38.08, 110.95, 174.71, 174.71)
    aspect = 192 / 256
    center, scale = box_to_center_scale(box, aspect, (1.09, 1.135))
    ref_center, ref_scale = official.rsn_box_to_center_scale(box, aspect)
    np.testing.assert_allclose(center, ref_center)
    np.testing.assert_allclose(scale, ref_scale, rtol=1e-6)
    # One factor: HRNet's box, padding after the aspect fix.
    _, pair = box_to_center_scale(box, aspect, (1.25, 1.25))
    _, hrnet = official.box_to_center_scale(box, aspect)
    np.testing.assert_allclose(pair, hrnet, rtol=1e-6)


def test_config_round_trip():
    codec = MSRAHeatmap(
        refinement="second_max",
        blur_kernel_size=5,
        box_padding=(1.09, 1.135),
        score_scale=0.5,
        score_offset=0.25,
    )
    again = MSRAHeatmap.from_config(codec.get_config())
    assert again.get_config() == codec.get_config()
    assert again.box_padding == (1.09, 1.135)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"refinement": "soft"}, "`refinement` must be"),
        ({"box_padding": 0}, "`box_padding` must be"),
        ({"box_padding": (1.1, -1)}, "`box_padding` must be"),
        ({"box_padding": (1, 1, 1)}, "`box_padding` must be"),
        ({"box_padding": "wide"}, "`box_padding` must be"),
        ({"box_padding": float("nan")}, "`box_padding` must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MSRAHeatmap(**kwargs)
