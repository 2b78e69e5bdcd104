"""Official HRNet checkpoints -> kerapose: parity with the PyTorch outputs.

Fixtures come from the official `PoseHighResolutionNet` (see
`shared/reference/README.md`); run on each backend with `KERAS_BACKEND`.
"""

from pathlib import Path

import keras
import numpy as np
import pytest

from kerapose.convert import CheckpointMismatchError
from kerapose.convert import convert_checkpoint
from kerapose.convert import convert_hrnet
from kerapose.convert import read_checkpoint
from kerapose.convert.core import apply_state_dict
from kerapose.convert.core import identity
from kerapose.convert.hrnet import hrnet_key_map
from kerapose.models.hrnet.hrnet_backbone import HRNetBackbone
from kerapose.models.top_down_estimator import TopDownPoseEstimator

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
HRNET = REFERENCE / "hrnet_tiny"
TOLERANCE = 1e-4  # README section 3 (measured float32 noise 3.9e-6)
HEAD = ("heatmap_head/",)


def fixture_file(*parts):
    path = REFERENCE.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"reference fixture not found: {path}")
    return path


def build_model(num_keypoints=17):
    backbone = HRNetBackbone(
        stage_channels=(8, 16, 32, 64),
        stage_modules=(1, 1, 1),
        stage_blocks=1,
        image_shape=(96, 64, 3),
    )
    return TopDownPoseEstimator(backbone, num_keypoints=num_keypoints)


def weights_of(model):
    return {v.path: keras.ops.convert_to_numpy(v.value) for v in model.weights}


def run(model):
    x = np.load(fixture_file("hrnet_tiny", "input.npy")).transpose(0, 2, 3, 1)
    y = model(keras.ops.convert_to_tensor(x), training=False)
    return keras.ops.convert_to_numpy(y)


def max_diff_to_reference(model):
    ref = np.load(fixture_file("hrnet_tiny", "output.npy"))
    return float(np.abs(run(model) - ref.transpose(0, 2, 3, 1)).max())


@pytest.fixture(scope="module")
def state_dict():
    return read_checkpoint(fixture_file("hrnet_tiny", "model.pth"))


@pytest.fixture(scope="module")
def converted():
    model = build_model()
    report = convert_hrnet(model, fixture_file("hrnet_tiny", "model.pth"))
    return model, report


def test_pth_matches_official_output(converted):
    model, report = converted
    assert report.ok, report
    assert len(report.loaded) == len(model.weights) == 247
    assert len(report.ignored) == 49  # num_batches_tracked
    diff = max_diff_to_reference(model)
    print(f"[{keras.backend.backend()}] hrnet_tiny max |diff| = {diff:.3e}")
    assert diff < TOLERANCE


def test_npz_gives_same_weights_and_output(converted):
    model = build_model()
    report = convert_hrnet(model, fixture_file("hrnet_tiny", "weights.npz"))
    assert report.ok, report
    expected = weights_of(converted[0])
    for path, value in weights_of(model).items():
        np.testing.assert_array_equal(value, expected[path], err_msg=path)
    np.testing.assert_array_equal(run(model), run(converted[0]))


@pytest.mark.parametrize(
    "path, key",
    [
        ("stem_conv1/conv/kernel", "conv1.weight"),
        ("stem_conv2/bn/moving_variance", "bn2.running_var"),
        ("stage1_block2/conv3/bn/beta", "layer1.2.bn3.bias"),
        ("stage1_block0/downsample/bn/gamma", "layer1.0.downsample.1.weight"),
        ("transition1/branch0/conv/kernel", "transition1.0.0.weight"),
        ("transition3/branch3_down0/bn/moving_mean",
         "transition3.3.0.1.running_mean"),
        ("stage4_module0/branch3_block0/conv2/conv/kernel",
         "stage4.0.branches.3.0.conv2.weight"),
        ("stage2_module0/fuse/fuse0_1/conv/kernel",
         "stage2.0.fuse_layers.0.1.0.weight"),
        ("stage3_module0/fuse/fuse2_0_down1/bn/gamma",
         "stage3.0.fuse_layers.2.0.1.1.weight"),
        ("heatmap_head/bias", "final_layer.bias"),
    ],
)  # fmt: skip
def test_key_map_examples(path, key):
    assert hrnet_key_map(path)[0] == key


def test_key_map_rejects_unknown_paths():
    assert hrnet_key_map("stem_conv1/conv/bias") is None
    assert hrnet_key_map("some_layer/kernel") is None
    assert hrnet_key_map("stage2_module0/fuse/fuse0_1/act/x") is None


@pytest.mark.parametrize(
    "key",
    ["stage3.0.fuse_layers.2.0.1.1.running_var", "final_layer.weight"],
)
def test_removed_tensor_is_named_and_nothing_assigned(state_dict, key):
    model = build_model()
    before = weights_of(model)
    broken = {k: v for k, v in state_dict.items() if k != key}
    with pytest.raises(CheckpointMismatchError, match=key) as info:
        convert_hrnet(model, broken)
    assert key in info.value.report.missing.values()
    assert not info.value.report.unexpected
    after = weights_of(model)
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)


def test_extra_tensor_is_named(state_dict):
    model = build_model()
    extra = dict(state_dict, **{"final_layer2.weight": np.zeros((3, 8, 1, 1))})
    with pytest.raises(CheckpointMismatchError, match="final_layer2.weight"):
        convert_hrnet(model, extra)


def test_wrong_shape_assigns_nothing(state_dict):
    model = build_model()
    before = weights_of(model)
    key = "stage2.0.branches.1.0.conv1.weight"
    bad = dict(state_dict, **{key: np.zeros((16, 16, 1, 1), "float32")})
    with pytest.raises(CheckpointMismatchError, match="Shape mismatches"):
        convert_hrnet(model, bad)
    after = weights_of(model)
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)


@pytest.mark.parametrize("fixture", ["omnipose_tiny", "rsn_tiny"])
def test_other_architecture_is_recognised(fixture):
    model = build_model()
    before = weights_of(model)
    with pytest.raises(CheckpointMismatchError) as info:
        convert_hrnet(model, fixture_file(fixture, "model.pth"))
    message = str(info.value)
    assert "another architecture" in message
    assert "... and" in message  # long sections are cut, counts kept
    after = weights_of(model)
    assert all(np.array_equal(after[p], v) for p, v in before.items())


def test_joint_count_hint_and_backbone_only_load(converted, state_dict):
    model = build_model(num_keypoints=5)
    head_before = {p: v for p, v in weights_of(model).items() if "head" in p}
    with pytest.raises(CheckpointMismatchError, match="num_keypoints=17"):
        convert_hrnet(model, state_dict)

    report = convert_hrnet(model, state_dict, skip_prefixes=HEAD)
    assert report.ok, report
    assert set(report.skipped) == {"heatmap_head/kernel", "heatmap_head/bias"}
    assert "final_layer.weight" not in report.unexpected
    expected = weights_of(converted[0])
    for path, value in weights_of(model).items():
        if path in head_before:
            np.testing.assert_array_equal(value, head_before[path])
        else:
            np.testing.assert_array_equal(value, expected[path], err_msg=path)


def test_non_strict_loads_what_fits(converted, state_dict):
    model = build_model()
    key = "stage4.0.fuse_layers.0.3.1.running_mean"
    broken = {k: v for k, v in state_dict.items() if k != key}
    broken["unused.weight"] = np.ones(3, "float32")
    with pytest.warns(UserWarning, match=key):
        report = convert_hrnet(model, broken, strict=False)
    assert not report.ok
    assert list(report.unexpected) == ["unused.weight"]
    assert len(report.loaded) == 246
    expected = weights_of(converted[0])
    missing = "stage4_module0/fuse/fuse0_3/bn/moving_mean"
    for path, value in weights_of(model).items():
        if path != missing:
            np.testing.assert_array_equal(value, expected[path], err_msg=path)


def test_convert_checkpoint_picks_the_family(state_dict):
    model = build_model()
    assert convert_checkpoint(model, state_dict).ok
    # The backbone alone has no use for the head tensors.
    report = convert_checkpoint(model.backbone, state_dict, strict=False)
    assert set(report.unexpected) == {"final_layer.weight", "final_layer.bias"}
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="No checkpoint converter"):
        convert_checkpoint(other, state_dict)
    with pytest.raises(ValueError, match="Unknown family"):
        convert_checkpoint(model, state_dict, family="nope")


def test_apply_state_dict_reports_unmapped_variables():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    report = apply_state_dict(
        layer,
        {"w": np.ones((3, 2))},
        lambda path: ("w", identity) if path.endswith("kernel") else None,
        strict=False,
    )
    assert list(report.missing.values()) == [None]
    assert "(no official key)" in str(report)


@pytest.mark.large
def test_full_w32_key_layout():
    """Every official W32 tensor (README section 5) has its variable."""
    model = TopDownPoseEstimator(HRNetBackbone(image_shape=(256, 192, 3)))
    shapes = {}
    for line in fixture_file("hrnet_w32_full_shape", "keys.txt").open():
        key, rest = line.split(" ", 1)
        dims = rest[rest.index("[") + 1 : rest.index("]")]
        shapes[key] = tuple(int(d) for d in dims.split(",") if d.strip())
    # Zero-stride views: the shapes are real, the memory is not.
    fake = {k: np.broadcast_to(np.float32(0), s) for k, s in shapes.items()}
    report = apply_state_dict(model, fake, hrnet_key_map)
    assert report.ok, report
    assert len(report.loaded) == 1462
    assert len(report.ignored) == len(shapes) - 1462 == 292
