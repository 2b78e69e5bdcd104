"""Official AE hourglass and HigherHRNet checkpoints -> kerapose: parity.

Fixtures come from the official `PoseNet` (princeton-vl/pose-ae-train) and
`PoseHigherResolutionNet` (see `shared/reference/README.md` sections 4.4 and
4.6); run on each backend with `KERAS_BACKEND`. Both inputs are non-square.
"""

import keras
import numpy as np
import pytest

from kerapose import zoo
from kerapose.convert import CheckpointMismatchError
from kerapose.convert import convert_checkpoint
from kerapose.convert import convert_higherhrnet
from kerapose.convert import convert_hourglass
from kerapose.convert import read_checkpoint
from kerapose.convert.higherhrnet import higherhrnet_key_map
from kerapose.convert.hourglass import closest_layout
from kerapose.convert.hourglass import hourglass_key_map
from tests.conftest import shared_path

TOLERANCE = 1e-4  # README section 3 (float32 noise 4.2e-6, 3.7e-6 / 5.5e-6)


def fixture(name, file):
    return shared_path("reference", name, file)


def outputs_of(model, name):
    x = np.load(fixture(name, "input.npy")).transpose(0, 2, 3, 1)
    y = model(keras.ops.convert_to_tensor(x), training=False)
    return [keras.ops.convert_to_numpy(t) for t in y]


def weights_of(model):
    return {v.path: keras.ops.convert_to_numpy(v.value) for v in model.weights}


@pytest.fixture(scope="module")
def hourglass():
    # The fixture's own build: 2 stacks, width 16, every level adds 8.
    return zoo.load("test_hourglass_ae", compile=False)


@pytest.fixture(scope="module")
def higherhrnet():
    return zoo.load("test_higherhrnet", compile=False)


@pytest.fixture(scope="module")
def ae_state_dict():
    return read_checkpoint(fixture("ae_hourglass_tiny", "model.pth"))


@pytest.fixture(scope="module")
def hhr_state_dict():
    return read_checkpoint(fixture("higherhrnet_tiny", "model.pth"))


def test_hourglass_matches_official_output(hourglass):
    report = convert_hourglass(
        hourglass, fixture("ae_hourglass_tiny", "model.pth")
    )
    assert report.ok, report
    assert len(report.loaded) == len(hourglass.weights) == 76
    got = np.stack(outputs_of(hourglass, "ae_hourglass_tiny"), 1)
    ref = np.load(fixture("ae_hourglass_tiny", "output.npy"))
    diff = float(np.abs(got - ref.transpose(0, 1, 3, 4, 2)).max())
    print(
        f"[{keras.backend.backend()}] ae_hourglass_tiny max |diff| = {diff:.3e}"
    )
    assert diff < TOLERANCE


def test_higherhrnet_matches_official_outputs(higherhrnet):
    report = convert_higherhrnet(
        higherhrnet, fixture("higherhrnet_tiny", "model.pth")
    )
    assert report.ok, report
    assert len(report.loaded) == len(higherhrnet.weights) == 294
    assert len(report.ignored) == 58  # num_batches_tracked
    for i, got in enumerate(outputs_of(higherhrnet, "higherhrnet_tiny")):
        ref = np.load(fixture("higherhrnet_tiny", f"output_{i}.npy"))
        diff = float(np.abs(got - ref.transpose(0, 2, 3, 1)).max())
        print(
            f"[{keras.backend.backend()}] higherhrnet_tiny output_{i} "
            f"max |diff| = {diff:.3e}"
        )
        assert diff < TOLERANCE


def test_trainer_prefix_and_npz_give_the_same_weights(hourglass, ae_state_dict):
    # The official trainer saves `model.module.<key>` inside a dict.
    model = zoo.load("test_hourglass_ae", compile=False)
    wrapped = {f"model.module.{k}": v for k, v in ae_state_dict.items()}
    assert convert_hourglass(model, wrapped).ok
    expected = weights_of(hourglass)
    for path, value in weights_of(model).items():
        np.testing.assert_array_equal(value, expected[path], err_msg=path)
    report = convert_hourglass(
        model, fixture("ae_hourglass_tiny", "weights.npz")
    )
    assert report.ok, report


@pytest.mark.parametrize(
    "path, key",
    [
        ("pre0/conv/kernel", "pre.0.conv.weight"),
        ("pre4/conv/bias", "pre.4.conv.bias"),
        ("pre1/bn/moving_var", None),
        ("pre1/bn/moving_variance", "pre.1.bn.running_var"),
        ("stack1_hourglass/low2/low2/up1/conv/kernel",
         "features.1.0.low2.low2.up1.conv.weight"),
        ("stack0_hourglass/low3/conv/bias", "features.0.0.low3.conv.bias"),
        ("stack0_conv2/conv/kernel", "features.0.2.conv.weight"),
        ("stack1_output/conv/bias", "outs.1.conv.bias"),
        ("stack0_merge_pred/conv/kernel", "merge_preds.0.conv.conv.weight"),
        ("stack0_merge_feature/conv/bias", "merge_features.0.conv.conv.bias"),
        ("stack0_hourglass/up2/conv/kernel", None),
    ],
)  # fmt: skip
def test_hourglass_key_map(path, key):
    entry = hourglass_key_map(path)
    assert (entry[0] if entry else None) == key


@pytest.mark.parametrize(
    "path, key",
    [
        ("stem_conv1/conv/kernel", "conv1.weight"),
        ("stage4_module0/fuse/fuse0_3/bn/gamma",
         "stage4.0.fuse_layers.0.3.1.weight"),
        ("higherhrnet_head/final_layer0/kernel", "final_layers.0.weight"),
        ("higherhrnet_head/final_layer1/bias", "final_layers.1.bias"),
        ("higherhrnet_head/deconv/kernel", "deconv_layers.0.0.0.weight"),
        ("higherhrnet_head/deconv_bn/moving_mean",
         "deconv_layers.0.0.1.running_mean"),
        ("higherhrnet_head/deconv_block0/conv1/conv/kernel",
         "deconv_layers.0.1.0.conv1.weight"),
        ("higherhrnet_head/deconv_block3/conv2/bn/beta",
         "deconv_layers.0.4.0.bn2.bias"),
        ("heatmap_head/kernel", None),
    ],
)  # fmt: skip
def test_higherhrnet_key_map(path, key):
    entry = higherhrnet_key_map()(path)
    assert (entry[0] if entry else None) == key


def test_removed_head_tensor_is_named_and_nothing_assigned(hhr_state_dict):
    model = zoo.load("test_higherhrnet", compile=False)
    before = weights_of(model)
    key = "deconv_layers.0.0.0.weight"
    broken = {k: v for k, v in hhr_state_dict.items() if k != key}
    with pytest.raises(CheckpointMismatchError, match=key):
        convert_higherhrnet(model, broken)
    after = weights_of(model)
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)


@pytest.mark.parametrize(
    "converter, model_name, checkpoint, layout",
    [
        (convert_hourglass, "test_hourglass_ae", "higherhrnet_tiny",
         "official HigherHRNet layout (`family='higherhrnet'`)"),
        (convert_hourglass, "test_hourglass_ae", "hrnet_tiny",
         "official HRNet layout (`family='hrnet'`)"),
        (convert_higherhrnet, "test_higherhrnet", "ae_hourglass_tiny",
         "official Associative Embedding hourglass layout"),
        (convert_higherhrnet, "test_higherhrnet", "mmpose_hourglass_ae_tiny",
         "MMPose"),
    ],
)  # fmt: skip
def test_wrong_family_names_the_closest_layout(
    converter, model_name, checkpoint, layout, hourglass, higherhrnet
):
    model = hourglass if model_name == "test_hourglass_ae" else higherhrnet
    state_dict = read_checkpoint(fixture(checkpoint, "weights.npz"))
    before = weights_of(model)
    with pytest.raises(CheckpointMismatchError) as info:
        converter(model, state_dict)
    message = str(info.value)
    assert layout in message
    assert "another architecture" in message
    after = weights_of(model)
    assert all(np.array_equal(after[p], v) for p, v in before.items())


def test_closest_layout_of_every_reference_fixture():
    expected = {
        "hrnet_tiny": "hrnet",
        "omnipose_tiny": "omnipose",
        "rsn_tiny": "rsn",
        "ae_hourglass_tiny": "hourglass",
        "higherhrnet_tiny": "higherhrnet",
        "yolo_pose_tiny": "yolo_pose",
        "mmpose_hrnet_tiny": "mmpose",
    }
    for name, family in expected.items():
        keys = {
            line.split(" ", 1)[0]: None
            for line in fixture(name, "keys.txt").open()
        }
        assert closest_layout(keys)[0] == family, name
    assert closest_layout({"foo.weight": None}) == (None, None)


def test_other_joint_count_loads_all_but_the_head(hhr_state_dict, higherhrnet):
    model = zoo.load("test_higherhrnet", num_keypoints=14, compile=False)
    with pytest.raises(CheckpointMismatchError):
        convert_higherhrnet(model, hhr_state_dict)
    report = convert_higherhrnet(
        model, hhr_state_dict, skip_prefixes=model.head_prefixes
    )
    assert report.ok, report
    assert all(p.startswith("higherhrnet_head/") for p in report.skipped)
    expected = weights_of(higherhrnet)
    got = weights_of(model)
    for path in report.loaded:
        np.testing.assert_array_equal(got[path], expected[path], err_msg=path)


def test_convert_checkpoint_picks_the_family(
    hourglass, higherhrnet, ae_state_dict, hhr_state_dict
):
    # HigherHRNet is recognised by its head, not its HRNet backbone.
    assert convert_checkpoint(higherhrnet, hhr_state_dict).ok
    assert convert_checkpoint(hourglass, ae_state_dict).ok
    with pytest.warns(UserWarning, match="final_layers"):
        report = convert_checkpoint(
            higherhrnet.backbone,
            hhr_state_dict,
            family="higherhrnet",
            strict=False,
        )
    assert all(
        k.startswith(("final_layers.", "deconv_layers."))
        for k in report.unexpected
    )
