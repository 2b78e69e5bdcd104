"""End to end from a JPEG: kerapose's `predict_image` against the official
test pipeline (`kerapose.testing.official_reference`), with converted
official fixture weights (`shared/reference/hrnet_tiny`, `rsn_tiny`).

The reference reads the JPEG with OpenCV, crops as the official code does
(box -> center/scale with the aspect fix and 1.25 padding, the three-point
affine through `cv2.warpAffine`), normalises in the checkpoint's channel
order (HRNet: RGB; RSN: BGR with BGR statistics, through the unfolded
weights), runs the network, merges the flip test (HRNet shifts the
flipped heatmaps one pixel, RSN does not) and decodes. HRNet: 1.25 box
padding, argmax and a quarter pixel toward the higher neighbour. RSN: its
own test box (9% / 13.5% wider and taller before the aspect fix) and its
blurred decode toward the second maximum, with the half-pixel offset.
"""

import cv2
import keras
import numpy as np
import pytest

from kerapose.codecs import MSRAHeatmap
from kerapose.codecs import MultiSigmaHeatmap
from kerapose.convert import convert_hrnet
from kerapose.convert import convert_rsn
from kerapose.convert import read_checkpoint
from kerapose.data.keypoint_specs import spec_for_num_keypoints
from kerapose.inference import predict_image
from kerapose.models import RSNBackbone
from kerapose.models import RSNPoseEstimator
from kerapose.models.hrnet.hrnet_backbone import HRNetBackbone
from kerapose.models.rsn.rsn_presets import presets as rsn_presets
from kerapose.models.top_down_estimator import TopDownPoseEstimator
from kerapose.testing import official_reference as official
from tests.conftest import shared_path

IMAGE = ("data", "coco_sample", "000000040083.jpg")
# Two people of the image's annotations, both inside it (no clipping).
BOXES = np.array(
    [[38.08, 110.95, 174.71, 174.71], [257.76, 139.06, 140.05, 154.21]]
)
INPUT_SIZE = (96, 64)  # the fixtures' input
TOLERANCE_PX = 0.5
# Keypoints whose reference decode would change under a heatmap change
# this small are not compared. The two crops differ by one grey level in
# a few pixels (the official float32 three-point matrix against
# kerapose's float64 one, through OpenCV's 1/32-pixel fixed point); the
# HRNet heatmaps then differ by up to 3.4e-3 (measured on JAX), backends
# by ~1e-5.
MARGIN = 1e-2
# The RSN fixture's blurred maps are flatter (runner-up gaps of 1e-3 to
# 1e-2) and its crops agree: all 34 keypoints matched to 1e-3 px even at
# zero margin (measured on the three backends); 1e-3 keeps ~30 of 34.
RSN_MARGIN = 1e-3
FLIP_PAIRS = spec_for_num_keypoints(17).flip_pairs


def hrnet_model():
    backbone = HRNetBackbone(
        stage_channels=(8, 16, 32, 64),
        stage_modules=(1, 1, 1),
        stage_blocks=1,
        image_shape=INPUT_SIZE + (3,),
    )
    return TopDownPoseEstimator(backbone, num_keypoints=17)


def rsn_model():
    backbone = RSNBackbone(
        stage_blocks=(1, 1, 1, 1),
        num_stages=2,
        layer_channels=(8, 16, 32, 64),
        stem_channels=8,
        upsample_channels=32,
        image_shape=INPUT_SIZE + (3,),
    )
    # The official RSN test protocol, as the official presets set it.
    protocol = rsn_presets["rsn_18"]["config"]["config"]["codec"]["config"]
    codec = MultiSigmaHeatmap(
        input_size=INPUT_SIZE,
        heatmap_size=(24, 16),
        flip_shift=False,
        refinement=protocol["refinement"],
        blur_kernel_size=protocol["blur_kernel_size"],
        box_padding=protocol["box_padding"],
    )
    return RSNPoseEstimator(backbone, codec=codec)


def final_heatmaps(model, crops):
    y = keras.ops.convert_to_numpy(model(crops, training=False))
    return y[:, -1] if y.ndim == 5 else y  # RSN: the last unit


def official_keypoints(model, channel_order, flip, shift, rsn_test=False):
    """The official pipeline on `BOXES`: keypoints (N, K, 2), margins.
    `rsn_test`: the official RSN test's box and decode."""
    bgr = cv2.imread(str(shared_path(*IMAGE)), cv2.IMREAD_COLOR)
    h, w = INPUT_SIZE
    to_box = (
        official.rsn_box_to_center_scale
        if rsn_test
        else official.box_to_center_scale
    )
    boxes = [to_box(b, w / h) for b in BOXES]
    centers = np.stack([c for c, _ in boxes])
    scales = np.stack([s for _, s in boxes])
    crops = np.stack(
        [official.crop(bgr, c, s, INPUT_SIZE, channel_order) for c, s in boxes]
    )
    heatmaps = final_heatmaps(model, crops)
    if flip:
        mirrored = final_heatmaps(
            model, np.ascontiguousarray(crops[:, :, ::-1])
        )
        heatmaps = official.merge_flipped(heatmaps, mirrored, FLIP_PAIRS, shift)
    if rsn_test:
        keypoints, _ = official.decode_rsn(heatmaps, centers, scales, (h, w))
        return keypoints, official.decode_rsn_margins(heatmaps)
    keypoints, _ = official.decode(heatmaps, centers, scales)
    return keypoints, official.decode_margins(heatmaps)


def kerapose_keypoints(model, flip):
    path = shared_path(*IMAGE)
    return predict_image(model, path, boxes=BOXES, flip_test=flip).keypoints


@pytest.fixture(scope="module")
def hrnet_results():
    model = hrnet_model()
    assert convert_hrnet(
        model, shared_path("reference", "hrnet_tiny", "model.pth")
    ).ok
    return {
        flip: (
            official_keypoints(model, "rgb", flip, shift=True),
            kerapose_keypoints(model, flip),
        )
        for flip in (False, True)
    }


@pytest.fixture(scope="module")
def rsn_results():
    state_dict = read_checkpoint(
        shared_path("reference", "rsn_tiny", "model.pth")
    )
    model = rsn_model()
    # The official route: the weights as trained, fed the BGR crop.
    assert convert_rsn(model, state_dict, input_channels="rgb").ok
    reference = {
        flip: official_keypoints(model, "bgr", flip, False, rsn_test=True)
        for flip in (False, True)
    }
    # HRNet's flip convention and HRNet's box and decode, which the RSN
    # checkpoints were not tested with: kerapose must match neither.
    wrong = official_keypoints(model, "bgr", True, True, rsn_test=True)
    hrnet_test = official_keypoints(model, "bgr", True, shift=False)
    # kerapose's route: the stem folded at conversion, fed RGB.
    assert convert_rsn(model, state_dict).ok
    results = {
        flip: (reference[flip], kerapose_keypoints(model, flip))
        for flip in (False, True)
    }
    results["wrong_shift"] = (wrong, results[True][1])
    results["hrnet_test"] = (hrnet_test, results[True][1])
    return results


def check(results, flip, margin=MARGIN):
    (expected, margins), keypoints = results[flip]
    stable = margins > margin
    # Random fixture weights: most peaks are still clear-cut (27 to 30
    # of 34 measured).
    assert stable.sum() >= 0.7 * stable.size, margins
    error = np.abs(keypoints - expected).max(-1)[stable]
    print(
        f"[{keras.backend.backend()}] flip={flip} compared "
        f"{stable.sum()}/{stable.size}, max error {error.max():.2e} px"
    )
    assert error.max() < TOLERANCE_PX, error


@pytest.mark.parametrize("flip", [False, True], ids=["plain", "flip"])
def test_hrnet_matches_official_pipeline(hrnet_results, flip):
    check(hrnet_results, flip)


@pytest.mark.parametrize("flip", [False, True], ids=["plain", "flip"])
def test_rsn_matches_official_pipeline(rsn_results, flip):
    check(rsn_results, flip, RSN_MARGIN)


def test_rsn_flip_test_does_not_shift(rsn_results):
    # With the one-pixel shift of the HRNet test the check fails: the
    # comparison sees the convention.
    with pytest.raises(AssertionError):
        check(rsn_results, "wrong_shift", RSN_MARGIN)


def test_rsn_uses_its_own_box_and_decode(rsn_results):
    with pytest.raises(AssertionError):
        check(rsn_results, "hrnet_test", RSN_MARGIN)


def test_flip_shift_is_serialised():
    codec = MSRAHeatmap(flip_shift=False)
    assert MSRAHeatmap.from_config(codec.get_config()).flip_shift is False
    assert MSRAHeatmap().flip_shift is True
    multi = MultiSigmaHeatmap(flip_shift=False)
    assert MultiSigmaHeatmap.from_config(multi.get_config()).flip_shift is False


def test_presets_record_the_official_conventions():
    official_names = ("rsn_18", "rsn_50", "rsn_101", "rsn_18_x4", "rsn_50_x4")
    for name in official_names:
        for tag in rsn_presets[name]["tags"].values():
            record = tag["preprocessing"]
            assert record["channel_order"] == "bgr"
            assert record["mean"] == [0.406, 0.456, 0.485]
            assert record["flip_heatmap_shift"] is False
    # Every RSN checkpoint in the zoo (official or MMPose) flips without
    # the shift; the codec carries it into inference.
    for preset in rsn_presets.values():
        if preset["tags"]:
            codec = preset["config"]["config"]["codec"]["config"]
            assert codec["flip_shift"] is False
    # The official checkpoints crop and decode as the official test.
    for name in official_names:
        codec = rsn_presets[name]["config"]["config"]["codec"]["config"]
        assert codec["refinement"] == "second_max"
        assert codec["box_padding"] == [1.09, 1.135]
