"""Official RSN checkpoints -> kerapose: parity with the PyTorch outputs.

Fixtures come from the official `RSN` and `PRM` classes (see
`shared/reference/README.md`, section 4.3); run on each backend with
`KERAS_BACKEND`. The official RSN takes BGR-normalised input (ImageNet
statistics in BGR order); `convert_rsn` folds that into the stem, so the
fixture input goes to the converted model channel-reversed (RGB).
"""

import cv2
import keras
import numpy as np
import pytest

from kerapose.convert import CheckpointMismatchError
from kerapose.convert import convert_checkpoint
from kerapose.convert import convert_rsn
from kerapose.convert import read_checkpoint
from kerapose.convert.rsn import STEM_KERNEL
from kerapose.convert.rsn import fold_bgr_input
from kerapose.convert.rsn import rsn_key_map
from kerapose.layers import PoseRefineMachine
from kerapose.models import RSNBackbone
from kerapose.models import RSNPoseEstimator
from kerapose.testing import official_reference as official
from tests.conftest import shared_path

TOLERANCE = 1e-4  # README section 3 (float32 noise 5.7e-6 / 2.8e-6)


def build_model(**overrides):
    """The `rsn_tiny` fixture: 2 stages, widths 8-64, 1 RSB per layer."""
    config = {
        "stage_blocks": (1, 1, 1, 1),
        "num_stages": 2,
        "layer_channels": (8, 16, 32, 64),
        "stem_channels": 8,
        "upsample_channels": 32,
        "image_shape": (96, 64, 3),
        **overrides,
    }
    return RSNPoseEstimator(RSNBackbone(**config))


def weights_of(model):
    return {v.path: keras.ops.convert_to_numpy(v.value) for v in model.weights}


def nhwc(*parts):
    return np.load(shared_path(*parts)).transpose(0, 2, 3, 1)


def rgb(bgr_input):
    """The official BGR-normalised input as kerapose's RGB-normalised one."""
    return np.ascontiguousarray(bgr_input[..., ::-1])


def final_heatmaps(model, x):
    y = model(keras.ops.convert_to_tensor(x), training=False)
    return keras.ops.convert_to_numpy(y)[:, -1]


@pytest.fixture(scope="module")
def state_dict():
    return read_checkpoint(shared_path("reference", "rsn_tiny", "model.pth"))


@pytest.fixture(scope="module")
def converted(state_dict):
    model = build_model()
    report = convert_rsn(model, state_dict)
    return model, report


@pytest.fixture(scope="module")
def unfolded(state_dict):
    """The weights as trained: the official network, taking BGR input."""
    model = build_model()
    assert convert_rsn(model, state_dict, input_channels="rgb").ok
    return model


def test_pth_matches_official_output(converted):
    model, report = converted
    assert report.ok, report
    # 142 conv + BN units: kernel, bias and four BN tensors each.
    assert len(report.loaded) == len(model.weights) == 142 * 6
    assert len(report.ignored) == 142  # num_batches_tracked
    x = nhwc("reference", "rsn_tiny", "input.npy")
    ref = nhwc("reference", "rsn_tiny", "output.npy")
    diff = float(np.abs(final_heatmaps(model, rgb(x)) - ref).max())
    print(f"[{keras.backend.backend()}] rsn_tiny max |diff| = {diff:.3e}")
    assert diff < TOLERANCE
    # Without the reversal the input is read in the wrong channel order.
    wrong = float(np.abs(final_heatmaps(model, x) - ref).max())
    assert wrong > 100 * TOLERANCE


def test_unfolded_weights_take_the_official_bgr_input(unfolded):
    x = nhwc("reference", "rsn_tiny", "input.npy")
    ref = nhwc("reference", "rsn_tiny", "output.npy")
    diff = float(np.abs(final_heatmaps(unfolded, x) - ref).max())
    assert diff < TOLERANCE


def test_real_image_folded_rgb_equals_official_bgr(converted, unfolded):
    # One JPEG crop, normalised both ways: kerapose's RGB with ImageNet
    # statistics into the folded weights, the official BGR with BGR
    # statistics into the weights as trained.
    bgr = cv2.imread(
        str(shared_path("data", "coco_sample", "000000000785.jpg"))
    )
    center, scale = official.box_to_center_scale(
        [280.79, 44.73, 218.7, 346.68], 64 / 96
    )
    crops = {
        order: official.crop(bgr, center, scale, (96, 64), order)[None]
        for order in ("rgb", "bgr")
    }
    np.testing.assert_allclose(
        crops["rgb"], rgb(crops["bgr"]), atol=1e-6
    )  # the fold's premise
    folded = final_heatmaps(converted[0], crops["rgb"])
    expected = final_heatmaps(unfolded, crops["bgr"])
    diff = float(np.abs(folded - expected).max())
    print(f"[{keras.backend.backend()}] real image max |diff| = {diff:.3e}")
    assert diff < TOLERANCE
    assert np.abs(expected).max() > 100 * TOLERANCE  # not a blank map


def test_fold_reverses_only_the_stem_kernel(state_dict):
    folded = fold_bgr_input(state_dict)
    np.testing.assert_array_equal(
        folded[STEM_KERNEL], state_dict[STEM_KERNEL][:, ::-1]
    )
    assert not np.array_equal(folded[STEM_KERNEL], state_dict[STEM_KERNEL])
    for key, value in state_dict.items():
        if key != STEM_KERNEL:
            assert folded[key] is value, key
    # No stem (a PRM alone): nothing to fold.
    key = "prm.conv_bn_relu_prm_1.conv.weight"
    prm = {key: np.zeros((17, 17, 3, 3))}
    assert fold_bgr_input(prm)[key] is prm[key]


def test_unknown_channel_order_is_refused(state_dict):
    # Refused before the model is looked at.
    with pytest.raises(ValueError, match="'bgr' for official RSN"):
        convert_rsn(None, state_dict, input_channels="BGR")


def test_predict_decodes_the_official_final_heatmaps(converted):
    model, _ = converted
    x = nhwc("reference", "rsn_tiny", "input.npy")
    ref = nhwc("reference", "rsn_tiny", "output.npy")
    out = model.predict(rgb(x), verbose=0)
    np.testing.assert_allclose(out["heatmaps"], ref, atol=TOLERANCE)
    assert out["keypoints"].shape == (2, 17, 2)


def test_npz_and_registry_give_the_same_weights(converted):
    model = build_model()
    report = convert_checkpoint(
        model, shared_path("reference", "rsn_tiny", "weights.npz")
    )
    assert report.ok, report
    expected = weights_of(converted[0])
    for path, value in weights_of(model).items():
        np.testing.assert_array_equal(value, expected[path], err_msg=path)


def test_data_parallel_prefix_is_removed(state_dict):
    model = build_model()
    prefixed = {f"module.{k}": v for k, v in state_dict.items()}
    assert convert_rsn(model, prefixed).ok


def test_prm_matches_official_module():
    inputs = keras.Input((24, 16, 17))
    model = keras.Model(inputs, PoseRefineMachine(17, name="prm")(inputs))
    official = dict(
        np.load(shared_path("reference", "rsn_prm_tiny", "weights.npz"))
    )
    # The official network never wires PRM in; its keys go under `prm.`.
    report = convert_rsn(model, {f"prm.{k}": v for k, v in official.items()})
    assert report.ok, report
    assert len(report.loaded) == 30
    x = nhwc("reference", "rsn_prm_tiny", "input.npy")
    ref = nhwc("reference", "rsn_prm_tiny", "output.npy")
    y = keras.ops.convert_to_numpy(model(x, training=False))
    diff = float(np.abs(y - ref).max())
    print(f"[{keras.backend.backend()}] rsn_prm_tiny max |diff| = {diff:.3e}")
    assert diff < TOLERANCE


@pytest.mark.parametrize(
    "path, key",
    [
        ("stem_conv/conv/kernel", "top.conv.conv.weight"),
        ("stem_conv/conv/bias", "top.conv.conv.bias"),
        ("stage0_layer2_block0/split_conv/bn/moving_mean",
         "stage0.downsample.layer2.0.conv_bn_relu1.bn.running_mean"),
        ("stage1_layer4_block0/branch4_step3/conv/kernel",
         "stage1.downsample.layer4.0.conv_bn_relu2_4_3.conv.weight"),
        ("stage0_layer3_block0/merge_conv/bn/gamma",
         "stage0.downsample.layer3.0.conv_bn_relu3.bn.weight"),
        ("stage0_layer3_block0/downsample/conv/bias",
         "stage0.downsample.layer3.0.downsample.conv.bias"),
        ("stage0_up1_lateral/conv/kernel",
         "stage0.upsample.up1.u_skip.conv.weight"),
        ("stage1_up3_top_down/bn/beta", "stage1.upsample.up3.up_conv.bn.bias"),
        ("stage0_up2_skip2/bn/moving_variance",
         "stage0.upsample.up2.skip2.bn.running_var"),
        ("stage0_up4_res_conv/conv/kernel",
         "stage0.upsample.up4.res_conv1.conv.weight"),
        ("stage1_up4_heatmap/conv/bias",
         "stage1.upsample.up4.res_conv2.conv.bias"),
        ("stage0_cross_conv/conv/kernel",
         "stage0.upsample.up4.cross_conv.conv.weight"),
        ("prm/spatial_depthwise/kernel",
         "prm.conv_bn_relu_prm_3_2.conv.weight"),
        ("prm/channel_conv2/bn/gamma", "prm.conv_bn_relu_prm_2_2.bn.weight"),
    ],
)  # fmt: skip
def test_key_map_examples(path, key):
    assert rsn_key_map(path)[0] == key


def test_key_map_rejects_unknown_paths():
    assert rsn_key_map("stem_conv/act/x") is None
    assert rsn_key_map("stage0_up1_resize/kernel") is None
    assert rsn_key_map("heatmap_head/kernel") is None


def test_removed_tensor_is_named_and_nothing_assigned(state_dict):
    model = build_model()
    before = weights_of(model)
    key = "stage1.upsample.up4.res_conv2.bn.running_var"
    broken = {k: v for k, v in state_dict.items() if k != key}
    with pytest.raises(CheckpointMismatchError, match=key):
        convert_rsn(model, broken)
    for path, value in weights_of(model).items():
        np.testing.assert_array_equal(value, before[path], err_msg=path)


def test_prm_model_names_the_missing_prm_tensors(state_dict):
    # An official checkpoint has no PRM: a PRM model must say so.
    model = build_model(use_prm=True)
    with pytest.raises(CheckpointMismatchError, match="prm.conv_bn_relu"):
        convert_rsn(model, state_dict)


def test_other_joint_count_hint_and_skip(state_dict):
    model = build_model(num_keypoints=16)
    with pytest.raises(CheckpointMismatchError, match="different joint"):
        convert_rsn(model, state_dict)
    report = convert_rsn(model, state_dict, skip_prefixes=model.head_prefixes)
    assert report.ok
    assert len(report.skipped) == 8 * 6  # res_conv2 of 8 units


def test_wrong_family_checkpoint_is_recognised():
    hrnet = read_checkpoint(shared_path("reference", "hrnet_tiny", "model.pth"))
    with pytest.raises(CheckpointMismatchError, match="another architecture"):
        convert_rsn(build_model(), hrnet)
