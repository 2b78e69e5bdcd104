"""MMPose checkpoints -> kerapose: parity with the MMPose outputs.

Fixtures come from MMPose's own classes (`shared/reference/README.md`,
section 8); run on each backend with `KERAS_BACKEND`.
"""

import json
import os
from collections import OrderedDict
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from kerapose import zoo
from kerapose.cli import main
from kerapose.convert import CheckpointFormatError
from kerapose.convert import CheckpointMismatchError
from kerapose.convert import UnsafeCheckpointError
from kerapose.convert import convert_checkpoint
from kerapose.convert import read_checkpoint
from kerapose.convert.mmpose import detect_layout
from kerapose.convert.mmpose import hrnet_from_mmpose
from kerapose.convert.mmpose import rsn_from_mmpose
from kerapose.convert.rsn import _mmpose_preset_for
from kerapose.models import RSNBackbone
from kerapose.models import RSNPoseEstimator
from kerapose.models.hrnet.hrnet_backbone import HRNetBackbone
from kerapose.models.top_down_estimator import TopDownPoseEstimator
from kerapose.utils import count_params
from tests.conftest import shared_path

TOLERANCE = 1e-4  # README section 8.2 (float32 noise 5.4e-6)


def build_from_config(fixture):
    """The HRNet of an MMPose fixture's `config.json`."""
    path = shared_path("reference", fixture, "config.json")
    cfg = json.loads(path.read_text())["constructor_cfg"]
    extra = cfg["backbone"]["extra"]
    stages = [extra[f"stage{s}"] for s in (2, 3, 4)]
    blocks = {b for stage in stages for b in stage["num_blocks"]}
    assert len(blocks) == 1, "kerapose HRNet has one block count per branch"
    backbone = HRNetBackbone(
        stage_channels=tuple(stages[-1]["num_channels"]),
        stage_modules=tuple(stage["num_modules"] for stage in stages),
        stage_blocks=blocks.pop(),
        stage1_blocks=extra["stage1"]["num_blocks"][0],
        stage1_filters=extra["stage1"]["num_channels"][0],
        image_shape=(96, 64, 3),
    )
    return TopDownPoseEstimator(
        backbone, num_keypoints=cfg["head"]["out_channels"]
    )


def nhwc(*parts):
    return np.load(shared_path("reference", *parts)).transpose(0, 2, 3, 1)


def max_diff(model, fixture):
    x = keras.ops.convert_to_tensor(nhwc(fixture, "input.npy"))
    y = keras.ops.convert_to_numpy(model(x, training=False))
    return float(np.abs(y - nhwc(fixture, "output.npy")).max())


def weights_of(model):
    return {v.path: keras.ops.convert_to_numpy(v.value) for v in model.weights}


@pytest.fixture(scope="module")
def hrnet_model():
    return build_from_config("mmpose_hrnet_tiny")


@pytest.mark.parametrize("file, head", [
    ("model.pth", "head."),  # MMPose 1.x
    ("model_0x.pth", "keypoint_head."),  # MMPose 0.x
])  # fmt: skip
def test_hrnet_matches_mmpose_output(hrnet_model, file, head):
    path = shared_path("reference", "mmpose_hrnet_tiny", file)
    keys = read_checkpoint(path)
    assert f"{head}final_layer.weight" in keys
    assert detect_layout(keys) == "mmpose"
    report = convert_checkpoint(hrnet_model, path)
    assert report.ok, report
    assert len(report.loaded) == len(hrnet_model.weights) == 202
    assert len(report.ignored) == 40  # num_batches_tracked
    diff = max_diff(hrnet_model, "mmpose_hrnet_tiny")
    print(f"[{keras.backend.backend()}] mmpose_hrnet_tiny {file}: {diff:.3e}")
    assert diff < TOLERANCE


def test_official_layout_forced_on_mmpose_file_fails_cleanly(hrnet_model):
    path = shared_path("reference", "mmpose_hrnet_tiny", "model.pth")
    before = weights_of(hrnet_model)
    with pytest.raises(CheckpointMismatchError, match="another architecture"):
        convert_checkpoint(hrnet_model, path, layout="official")
    after = weights_of(hrnet_model)
    assert all(np.array_equal(after[p], v) for p, v in before.items())
    with pytest.raises(ValueError, match="Unknown checkpoint layout"):
        convert_checkpoint(hrnet_model, path, layout="mmpose2")


def test_hrnet_key_renames():
    arrays = {
        "backbone.stage2.0.fuse_layers.0.1.0.weight": 1,
        "head.final_layer.bias": 2,
        "data_preprocessor.mean": 3,  # carries nothing: dropped
        "head.deconv_layers.0.weight": 4,  # no kerapose counterpart: kept
    }
    assert hrnet_from_mmpose(arrays) == {
        "stage2.0.fuse_layers.0.1.0.weight": 1,
        "final_layer.bias": 2,
        "head.deconv_layers.0.weight": 4,
    }
    mixed = {"head.final_layer.bias": 1, "keypoint_head.final_layer.bias": 2}
    with pytest.raises(ValueError, match="mixes checkpoint layouts"):
        hrnet_from_mmpose(mixed)
    assert detect_layout({"final_layer.bias": 1}) == "official"
    # A model of its own with a `backbone` attribute is not MMPose's.
    assert detect_layout({"backbone.w": 1, "neck.w": 2}) == "official"


RSN_FIXTURE = "mmpose_rsn_tiny"


def rsn_outputs(model):
    """Max abs diff per head output of the RSN fixture (6 = 2 stages x 3
    units, coarse to fine; MMPose predicts with the last)."""
    x = keras.ops.convert_to_tensor(nhwc(RSN_FIXTURE, "input.npy"))
    y = keras.ops.convert_to_numpy(model(x, training=False))
    assert y.shape == (2, 6, 24, 16, 17)
    return [
        float(np.abs(y[:, i] - nhwc(RSN_FIXTURE, f"output_{i}.npy")).max())
        for i in range(6)
    ]


@pytest.fixture(scope="module")
def rsn_model():
    """`test_rsn_mmpose` (the fixture's network) with the fixture's file."""
    path = shared_path("reference", RSN_FIXTURE, "model.pth")
    return zoo.load("test_rsn_mmpose", weights=path, compile=False)


def test_rsn_matches_mmpose_outputs(rsn_model):
    # The fixture's network: MMPose counts 315,660 parameters.
    config = shared_path("reference", RSN_FIXTURE, "config.json")
    params = json.loads(config.read_text())["params_total"]
    assert count_params(rsn_model) == params == 315_660
    assert not any(v.path.endswith("/conv/bias") for v in rsn_model.weights)
    diffs = rsn_outputs(rsn_model)
    print(f"[{keras.backend.backend()}] {RSN_FIXTURE}: {max(diffs):.3e}")
    # README section 8.2: float32 noise 2.3e-6 to 8.1e-6, BN eps swap 2e-2.
    assert max(diffs) < TOLERANCE


def test_rsn_stem_takes_rgb_as_mmpose_does(rsn_model):
    # MMPose's RSN is trained on RGB (no channel swap folded into the stem,
    # unlike official RSN files): the kernel is the file's, transposed.
    path = shared_path("reference", RSN_FIXTURE, "model.pth")
    stem = read_checkpoint(path)["backbone.top.top.0.conv.weight"]
    kernel = weights_of(rsn_model)["stem_conv/conv/kernel"]
    np.testing.assert_array_equal(kernel, stem.transpose(2, 3, 1, 0))


def test_rsn_converts_with_the_cli(tmp_path, rsn_model):
    path = shared_path("reference", RSN_FIXTURE, "model.pth")
    out = tmp_path / "rsn.weights.h5"
    assert main(["convert", "test_rsn_mmpose", str(path), "-o", str(out)]) == 0
    model = zoo.load("test_rsn_mmpose", weights=out, compile=False)
    expected, got = weights_of(rsn_model), weights_of(model)
    assert all(np.array_equal(got[p], v) for p, v in expected.items())


def test_rsn_key_renames():
    arrays = {
        "backbone.top.top.0.conv.weight": 1,
        "backbone.multi_stage_rsn.0.upsample.up1.in_skip.bn.bias": 2,
        "backbone.multi_stage_rsn.0.upsample.up3.out_skip2.conv.weight": 3,
        "backbone.multi_stage_rsn.0.downsample.layer2.0.conv_bn3.bn.weight": 4,
        "keypoint_head.predict_layers.4.conv_layers.1.conv.weight": 5,
        "head.predict_layers.2.conv_layers.0.bn.running_var": 6,
        "data_preprocessor.std": 7,  # carries nothing: dropped
        "head.predict_layers.5.prm.conv.weight": 8,  # unknown: kept
    }
    assert rsn_from_mmpose(arrays) == {
        "top.conv.conv.weight": 1,
        "stage0.upsample.up1.u_skip.bn.bias": 2,
        "stage0.upsample.up3.skip2.conv.weight": 3,
        "stage0.downsample.layer2.0.conv_bn_relu3.bn.weight": 4,
        # 3 units in the file: head output n is stage n // 3, unit n % 3.
        "stage1.upsample.up2.res_conv2.conv.weight": 5,
        "stage0.upsample.up3.res_conv1.bn.running_var": 6,
        "head.predict_layers.5.prm.conv.weight": 8,
    }
    mixed = {
        "backbone.multi_stage_rsn.0.upsample.up1.in_skip.bn.bias": 1,
        "head.predict_layers.0.conv_layers.0.conv.weight": 2,
        "keypoint_head.predict_layers.0.conv_layers.0.conv.weight": 3,
    }
    with pytest.raises(ValueError, match="mixes checkpoint layouts"):
        rsn_from_mmpose(mixed)


def test_mmpose_rsn_into_official_rsn_names_the_variant():
    # The fixture's network with the official conv biases.
    official = zoo.load("test_rsn_mmpose", compile=False)
    config = official.backbone.get_config()
    model = RSNPoseEstimator(
        RSNBackbone.from_config({**config, "conv_bias": True})
    )
    before = weights_of(model)
    path = shared_path("reference", RSN_FIXTURE, "model.pth")
    with pytest.raises(CheckpointMismatchError, match="conv_bias=False"):
        convert_checkpoint(model, path)
    after = weights_of(model)
    assert all(np.array_equal(after[p], v) for p, v in before.items())
    # Full-size models get the preset to use.
    rsn_50_x2 = SimpleNamespace(stage_blocks=(3, 4, 6, 3), num_stages=2)
    assert _mmpose_preset_for(rsn_50_x2) == "rsn_50_x2_mmpose"


def test_official_rsn_into_mmpose_variant_says_conv_bias():
    # The official `rsn_tiny` network without conv biases.
    backbone = RSNBackbone(
        stage_blocks=(1, 1, 1, 1),
        num_stages=2,
        layer_channels=(8, 16, 32, 64),
        stem_channels=8,
        upsample_channels=32,
        image_shape=(96, 64, 3),
        conv_bias=False,
    )
    path = shared_path("reference", "rsn_tiny", "model.pth")
    with pytest.raises(CheckpointMismatchError, match="official preset"):
        convert_checkpoint(RSNPoseEstimator(backbone), path)


def test_mmpose_rsn_and_hrnet_files_name_their_layout(hrnet_model, rsn_model):
    rsn = shared_path("reference", RSN_FIXTURE, "model.pth")
    hrnet = shared_path("reference", "mmpose_hrnet_tiny", "model.pth")
    with pytest.raises(ValueError, match="is an MMPose RSN checkpoint"):
        convert_checkpoint(hrnet_model, rsn)
    with pytest.raises(ValueError, match="rsn_50_mmpose"):
        zoo.load("test_hrnet", weights=rsn, compile=False)
    before = weights_of(rsn_model)
    with pytest.raises(ValueError, match="not an MMPose RSN one"):
        convert_checkpoint(rsn_model, hrnet)
    after = weights_of(rsn_model)
    assert all(np.array_equal(after[p], v) for p, v in before.items())


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"echo pwned > {self.marker}",)


class _Config:  # a class the reader does not know, like mmengine's
    def __init__(self):
        self.lr = 0.1


@pytest.mark.parametrize("zip_format", [True, False])
@pytest.mark.parametrize("use_torch", [False, True])
def test_meta_with_unknown_globals_is_dropped(tmp_path, zip_format, use_torch):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    meta = {
        "dataset_meta": {"sigmas": np.arange(3.0)},
        "cfg": _Config(),
        "hook": _Exploit(marker),
    }
    weights = OrderedDict(w=torch.arange(6.0).reshape(2, 3))
    path = tmp_path / "mmpose.pth"
    save = {"_use_new_zipfile_serialization": zip_format}
    torch.save({"meta": meta, "state_dict": weights}, path, **save)
    state_dict = read_checkpoint(path, use_torch=use_torch)
    assert list(state_dict) == ["w"]
    np.testing.assert_array_equal(state_dict["w"], np.arange(6.0).reshape(2, 3))
    assert not marker.exists()

    # The same class inside the state dict is refused, naming it.
    weights["w"] = np.arange(3.0)
    torch.save({"meta": {}, "state_dict": weights}, path, **save)
    with pytest.raises(UnsafeCheckpointError, match="numpy") as info:
        read_checkpoint(path, use_torch=use_torch)
    assert "re-save just `model.state_dict()`" in str(info.value)


def test_truncated_or_garbage_mmpose_file(tmp_path):
    data = shared_path("reference", "mmpose_hrnet_tiny", "model.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(CheckpointFormatError, match="truncated") as info:
        zoo.load("test_hrnet", weights=truncated)
    assert str(truncated) in str(info.value)
    assert "Download or save the file again" in str(info.value)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointFormatError, match="PyTorch checkpoint"):
        zoo.load("test_hrnet", weights=garbage)


@pytest.fixture(scope="module")
def official_as_mmpose(tmp_path_factory):
    """The official `hrnet_tiny` fixture saved in the MMPose 1.x layout.

    `test_hrnet` has the official stage 1 (4 blocks), which the MMPose
    fixture does not, so `zoo.load` is checked against this file.
    """
    torch = pytest.importorskip("torch")
    official = read_checkpoint(shared_path("reference", "hrnet_tiny/model.pth"))
    state_dict = OrderedDict(
        (("head." if k.startswith("final_layer") else "backbone.") + k, v)
        for k, v in official.items()
    )
    path = tmp_path_factory.mktemp("mmpose") / "hrnet.pth"
    tensors = {k: torch.from_numpy(v) for k, v in state_dict.items()}
    torch.save(
        {"meta": {"epoch": 210}, "state_dict": tensors},
        path,
        _use_new_zipfile_serialization=False,  # as MMPose 1.x publishes
    )
    return path


def test_zoo_load_and_cli_detect_mmpose_layout(tmp_path, official_as_mmpose):
    shape = (96, 64, 3)
    model = zoo.load(
        "test_hrnet", weights=official_as_mmpose, input_shape=shape
    )
    assert max_diff(model, "hrnet_tiny") < TOLERANCE

    out = tmp_path / "hrnet.weights.h5"
    args = ["convert", "test_hrnet", str(official_as_mmpose), "-o", str(out)]
    assert main(args) == 0
    model = zoo.load("test_hrnet", weights=out, input_shape=shape)
    assert max_diff(model, "hrnet_tiny") < TOLERANCE
