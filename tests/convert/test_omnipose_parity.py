"""Official OmniPose / OmniPose-Lite checkpoints -> kerapose: parity with
the PyTorch outputs.

Fixtures come from the official `OmniPose` class (see
`shared/reference/README.md`, section 4.2); run on each backend with
`KERAS_BACKEND`.
"""

import keras
import numpy as np
import pytest

from kerapose.convert import CheckpointMismatchError
from kerapose.convert import convert_checkpoint
from kerapose.convert import convert_omnipose
from kerapose.convert import read_checkpoint
from kerapose.convert.omnipose import omnipose_key_map
from kerapose.models import OmniPoseBackbone
from kerapose.models import TopDownPoseEstimator
from tests.conftest import shared_path

TOLERANCE = 1e-4  # README section 3 (measured float32 noise 1.7e-5)
FIXTURES = {"omnipose_tiny": False, "omnipose_lite_tiny": True}


def fixture_file(name, filename):
    return shared_path("reference", name, filename)


def build_model(separable, num_keypoints=17):
    backbone = OmniPoseBackbone(
        stage_channels=(8, 16, 32, 64),
        stage_modules=(1, 1, 1),
        stage_blocks=1,
        separable=separable,
        image_shape=(96, 64, 3),
    )
    return TopDownPoseEstimator(backbone, num_keypoints=num_keypoints)


def weights_of(model):
    return {v.path: keras.ops.convert_to_numpy(v.value) for v in model.weights}


def max_diff_to_reference(model, name):
    x = np.load(fixture_file(name, "input.npy")).transpose(0, 2, 3, 1)
    ref = np.load(fixture_file(name, "output.npy")).transpose(0, 2, 3, 1)
    y = keras.ops.convert_to_numpy(model(x, training=False))
    return float(np.abs(y - ref).max())


@pytest.fixture(scope="module", params=sorted(FIXTURES))
def converted(request):
    name = request.param
    model = build_model(FIXTURES[name])
    report = convert_checkpoint(model, fixture_file(name, "model.pth"))
    return name, model, report


def test_pth_matches_official_output(converted):
    name, model, report = converted
    assert report.ok, report
    # Every variable loaded; only `num_batches_tracked` (one per BN) left.
    assert len(report.loaded) == len(model.weights)
    assert len(report.ignored) == 86
    diff = max_diff_to_reference(model, name)
    print(f"[{keras.backend.backend()}] {name} max |diff| = {diff:.3e}")
    assert diff < TOLERANCE


def test_gaussian_filters_come_from_the_checkpoint(converted):
    name, model, _ = converted
    state = read_checkpoint(fixture_file(name, "model.pth"))
    key = "stage4.0.fuse_layers.0.3.11.weight"
    path = "stage4_module0/fuse/fuse0_3_up/gaussian/kernel"
    assert omnipose_key_map(path)[0] == key
    np.testing.assert_array_equal(
        weights_of(model)[path], state[key].transpose(2, 3, 0, 1)
    )


@pytest.mark.parametrize(
    "path, key",
    [
        ("stage2_module0/fuse/fuse0_1/conv/kernel",
         "stage2.0.fuse_layers.0.1.0.weight"),
        ("stage2_module0/fuse/fuse0_1_up/deconv0/kernel",
         "stage2.0.fuse_layers.0.1.2.weight"),
        ("stage3_module0/fuse/fuse0_2_up/bn1/moving_var",
         None),
        ("stage3_module0/fuse/fuse0_2_up/bn1/moving_variance",
         "stage3.0.fuse_layers.0.2.6.running_var"),
        ("stage3_module0/fuse/fuse0_2_up/gaussian/kernel",
         "stage3.0.fuse_layers.0.2.8.weight"),
        ("stage4_module0/fuse/fuse3_1_down1/bn/beta",
         "stage4.0.fuse_layers.3.1.1.1.bias"),
        ("stem_conv1/conv/depthwise/kernel", "conv1.spatialConv.weight"),
        ("stage1_block0/downsample/conv/pointwise/kernel",
         "layer1.0.downsample.0.pointConv.weight"),
        ("waspv2/aspp3/conv/depthwise/kernel",
         "waspv2.aspp3.atrous_conv.spatialConv.weight"),
        ("waspv2/pool/bn/gamma", "waspv2.global_avg_pool.2.weight"),
        ("waspv2/fuse/conv/kernel", "waspv2.conv1.weight"),
        ("waspv2/low_level/bn/moving_mean", "waspv2.bn2.running_mean"),
        ("waspv2/decode2/conv/kernel", "waspv2.last_conv.3.weight"),
        ("heatmap_head/bias", "waspv2.last_conv.6.bias"),
        ("waspv2/unknown/conv/depthwise/kernel", None),
    ],
)  # fmt: skip
def test_key_map_examples(path, key):
    entry = omnipose_key_map(path)
    assert (entry and entry[0]) == key


def test_removed_gaussian_is_named_and_nothing_assigned():
    model = build_model(separable=False)
    before = weights_of(model)
    state = read_checkpoint(fixture_file("omnipose_tiny", "model.pth"))
    key = "stage3.0.fuse_layers.1.2.5.weight"
    broken = {k: v for k, v in state.items() if k != key}
    with pytest.raises(CheckpointMismatchError, match=key):
        convert_omnipose(model, broken)
    after = weights_of(model)
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)


def test_lite_and_full_checkpoints_are_not_interchangeable():
    model = build_model(separable=False)
    with pytest.raises(CheckpointMismatchError):
        convert_omnipose(model, fixture_file("omnipose_lite_tiny", "model.pth"))


def test_hrnet_checkpoint_is_recognised_as_foreign():
    model = build_model(separable=False)
    with pytest.raises(CheckpointMismatchError, match="another architecture"):
        convert_omnipose(model, fixture_file("hrnet_tiny", "model.pth"))


def test_joint_count_hint_and_backbone_only_load():
    model = build_model(separable=True, num_keypoints=5)
    path = fixture_file("omnipose_lite_tiny", "model.pth")
    with pytest.raises(CheckpointMismatchError, match="num_keypoints=17"):
        convert_omnipose(model, path)
    report = convert_omnipose(model, path, skip_prefixes=("heatmap_head/",))
    assert report.ok, report
    assert set(report.skipped) == {"heatmap_head/kernel", "heatmap_head/bias"}


@pytest.mark.large
@pytest.mark.parametrize("separable", [False, True])
def test_full_w48_variables_all_have_distinct_official_keys(separable):
    # No full-size OmniPose key list is stored; the tiny fixtures check the
    # keys themselves, this checks that the full models need no other rule.
    model = TopDownPoseEstimator(OmniPoseBackbone(separable=separable))
    keys = [omnipose_key_map(v.path) for v in model.weights]
    missing = [v.path for v, k in zip(model.weights, keys) if k is None]
    assert missing == []
    assert len({k[0] for k in keys}) == len(model.weights)
