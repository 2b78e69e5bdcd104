"""MMPose 0.x HigherHRNet and AE hourglass checkpoints -> kerapose: parity.

`kerapose.convert.mmpose_bottom_up` is not yet in `FROM_MMPOSE`; tests that
load through `zoo.load` register it with `monkeypatch`. Fixtures:
`shared/reference/README.md` sections 4.6 and 8; run on each backend with
`KERAS_BACKEND`.
"""

import re
from collections import OrderedDict

import keras
import numpy as np
import pytest

from kerapose import zoo
from kerapose.cli import main
from kerapose.convert import convert_higherhrnet
from kerapose.convert import convert_hourglass
from kerapose.convert import read_checkpoint
from kerapose.convert.mmpose import FROM_MMPOSE
from kerapose.convert.mmpose import detect_layout
from kerapose.convert.mmpose_bottom_up import BOTTOM_UP_FROM_MMPOSE
from kerapose.convert.mmpose_bottom_up import fold_batchnorm
from kerapose.convert.mmpose_bottom_up import higherhrnet_from_mmpose
from kerapose.convert.mmpose_bottom_up import hourglass_from_mmpose
from kerapose.convert.mmpose_bottom_up import mmpose_network
from tests.conftest import shared_path

# README sections 4.6 and 8.2: float32 noise up to 8.8e-6 (hourglass),
# 5.5e-6 (HigherHRNet); a BN eps swap moves the outputs by 2.8e-2 or more.
TOLERANCE = 1e-4
HOURGLASS = "mmpose_hourglass_ae_tiny"
HIGHERHRNET = "higherhrnet_tiny"
MMPOSE_TAGS = (
    "higherhrnet_w32.mmpose_coco_512",
    "higherhrnet_w32.mmpose_coco_640",
    "higherhrnet_w48.mmpose_coco_512",
    "hourglass_ae_mmpose.coco_512",
)


def fixture(name, file):
    return shared_path("reference", name, file)


def nhwc(name, file):
    return np.load(fixture(name, file)).transpose(0, 2, 3, 1)


def outputs_of(model, name):
    x = keras.ops.convert_to_tensor(nhwc(name, "input.npy"))
    return [keras.ops.convert_to_numpy(t) for t in model(x, training=False)]


def max_diff(got, name, file):
    return float(np.abs(got - nhwc(name, file)).max())


def weights_of(model):
    return {v.path: keras.ops.convert_to_numpy(v.value) for v in model.weights}


def hourglass_diffs(model):
    """Max |diff| of stack 0, and of the last stack's heatmaps and tags."""
    first, last = outputs_of(model, HOURGLASS)
    return {
        "backbone_stack_0": max_diff(first, HOURGLASS, "backbone_stack_0.npy"),
        "output_0": max_diff(last[..., :17], HOURGLASS, "output_0.npy"),
        "output_1": max_diff(last[..., 17:], HOURGLASS, "output_1.npy"),
    }


def higherhrnet_diffs(model):
    return {
        f"output_{i}": max_diff(got, HIGHERHRNET, f"output_{i}.npy")
        for i, got in enumerate(outputs_of(model, HIGHERHRNET))
    }


def as_mmpose_0x(official):
    """The official HigherHRNet keys under MMPose 0.x's module prefixes."""
    return OrderedDict(
        (
            (
                "keypoint_head."
                if k.startswith(("final_layers.", "deconv_layers."))
                else "backbone."
            )
            + k,
            v,
        )
        for k, v in official.items()
    )


@pytest.fixture(scope="module")
def hourglass_model():
    return zoo.load("test_hourglass_ae_mmpose", compile=False)


@pytest.fixture(scope="module")
def higherhrnet_model():
    return zoo.load("test_higherhrnet", compile=False)


@pytest.fixture(scope="module")
def hourglass_state_dict():
    return read_checkpoint(fixture(HOURGLASS, "model.pth"))


@pytest.fixture(scope="module")
def higherhrnet_state_dict():
    return as_mmpose_0x(read_checkpoint(fixture(HIGHERHRNET, "model.pth")))


@pytest.fixture(scope="module")
def higherhrnet_file(tmp_path_factory, higherhrnet_state_dict):
    """`higherhrnet_state_dict` saved as MMPose 0.x publishes: a `meta` +
    `state_dict` checkpoint dict."""
    torch = pytest.importorskip("torch")
    path = tmp_path_factory.mktemp("mmpose") / "higher_hrnet_tiny.pth"
    tensors = OrderedDict(
        (k, torch.from_numpy(np.ascontiguousarray(v)))
        for k, v in higherhrnet_state_dict.items()
    )
    torch.save({"meta": {"epoch": 300}, "state_dict": tensors}, path)
    return path


@pytest.fixture
def registered(monkeypatch):
    """Registers the bottom-up renamers as `mmpose.py` is to do."""
    for family, renamer in BOTTOM_UP_FROM_MMPOSE.items():
        monkeypatch.setitem(FROM_MMPOSE, family, renamer)


def test_hourglass_matches_mmpose_outputs(
    hourglass_model, hourglass_state_dict
):
    assert detect_layout(hourglass_state_dict) == "mmpose"
    official = hourglass_from_mmpose(hourglass_state_dict)
    # 36 conv + BN modules folded to conv + bias, 2 out_convs copied.
    assert len(official) == 76
    assert not any(".bn." in k for k in official)
    report = convert_hourglass(hourglass_model, official)
    assert report.ok, report
    assert len(report.loaded) == len(hourglass_model.weights) == 76
    diffs = hourglass_diffs(hourglass_model)
    print(f"[{keras.backend.backend()}] {HOURGLASS} max |diff| {diffs}")
    assert max(diffs.values()) < TOLERANCE


def test_higherhrnet_matches_official_outputs(
    higherhrnet_model, higherhrnet_state_dict
):
    """Checks the renaming only: no MMPose-made HigherHRNet fixture exists,
    so the official fixture is re-keyed with MMPose 0.x's prefixes."""
    assert detect_layout(higherhrnet_state_dict) == "mmpose"
    official = higherhrnet_from_mmpose(higherhrnet_state_dict)
    report = convert_higherhrnet(higherhrnet_model, official)
    assert report.ok, report
    assert len(report.loaded) == len(higherhrnet_model.weights) == 294
    diffs = higherhrnet_diffs(higherhrnet_model)
    print(f"[{keras.backend.backend()}] {HIGHERHRNET} via MMPose keys {diffs}")
    assert max(diffs.values()) < TOLERANCE


def test_zoo_load_converts_both_mmpose_files(
    registered, hourglass_state_dict, higherhrnet_file
):
    hourglass = zoo.load(
        "test_hourglass_ae_mmpose",
        weights=fixture(HOURGLASS, "model.pth"),
        compile=False,
    )
    assert max(hourglass_diffs(hourglass).values()) < TOLERANCE
    higherhrnet = zoo.load(
        "test_higherhrnet", weights=higherhrnet_file, compile=False
    )
    assert max(higherhrnet_diffs(higherhrnet).values()) < TOLERANCE


def test_cli_convert_writes_the_mmpose_weights(registered, tmp_path):
    out = tmp_path / "hourglass.weights.h5"
    path = fixture(HOURGLASS, "model.pth")
    assert (
        main(["convert", "test_hourglass_ae_mmpose", str(path), "-o", str(out)])
        == 0
    )
    model = zoo.load("test_hourglass_ae_mmpose", weights=out, compile=False)
    assert max(hourglass_diffs(model).values()) < TOLERANCE


@pytest.mark.parametrize("name", MMPOSE_TAGS)
def test_mmpose_tags_name_their_checkpoints(name):
    arch, tag = name.split(".")
    spec = zoo.describe(name)["tags"][tag]
    weights = spec["weights"]
    file = weights["url"].rsplit("/", 1)[1]
    size = spec["image_shape"][0]
    pattern = rf".+_{size}x{size}-[0-9a-f]{{8}}_\d{{8}}\.pth"
    assert re.fullmatch(pattern, file)
    assert f"-{weights['sha256_prefix']}_" in file
    assert weights["layout"] == "mmpose-0.x"
    assert weights["licence"] == "Apache-2.0"
    metrics = weights["metrics"]
    assert metrics == spec["metrics"]
    assert 0.6 < metrics["coco/AP"] < metrics["coco/AP_multi_scale"] < 0.72


@pytest.mark.parametrize(
    "model_name, checkpoint, layout",
    [
        ("test_hourglass_ae_mmpose", "higherhrnet", "MMPose HigherHRNet"),
        ("test_hourglass_ae_mmpose", "mmpose_hrnet_tiny", "MMPose HRNet"),
        ("test_hourglass_ae_mmpose", "mmpose_rsn_tiny", "MMPose RSN"),
        ("test_higherhrnet", HOURGLASS, "MMPose Associative Embedding"),
        ("test_higherhrnet", "mmpose_hrnet_tiny", "MMPose HRNet"),
    ],
)  # fmt: skip
def test_file_of_another_mmpose_network_names_its_layout(
    registered, higherhrnet_file, model_name, checkpoint, layout
):
    path = (
        higherhrnet_file
        if checkpoint == "higherhrnet"
        else fixture(checkpoint, "model.pth")
    )
    with pytest.raises(ValueError, match=layout):
        zoo.load(model_name, weights=path, compile=False)


def test_fold_batchnorm_equals_conv_then_batchnorm():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2, 1, 1)).astype("float32")
    b = rng.normal(size=3).astype("float32")
    gamma, beta, mean = rng.normal(size=(3, 3)).astype("float32")
    var = rng.uniform(0.5, 1.5, size=3).astype("float32")
    x = rng.normal(size=2)
    conv = w[:, :, 0, 0] @ x + b
    expected = (conv - mean) / np.sqrt(var + 1e-5) * gamma + beta
    fw, fb = fold_batchnorm(w, gamma, beta, mean, var, bias=b)
    assert fw.dtype == fb.dtype == np.float32
    np.testing.assert_allclose(fw[:, :, 0, 0] @ x + fb, expected, rtol=1e-6)
    fw, fb = fold_batchnorm(w, gamma, beta, mean, var)  # conv without bias
    np.testing.assert_allclose(
        fw[:, :, 0, 0] @ x + fb, expected - b * gamma / np.sqrt(var + 1e-5),
        rtol=1e-5,
    )  # fmt: skip


def test_hourglass_key_renames_and_incomplete_batchnorm():
    bn = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
    module = {
        f"backbone.hourglass_modules.1.0.low2.up1.bn.{k}": np.full(2, v)
        for k, v in bn.items()
    }
    module["backbone.hourglass_modules.1.0.low2.up1.conv.weight"] = np.ones(
        (2, 2, 3, 3)
    )
    state_dict = {
        **module,
        "backbone.hourglass_modules.1.0.low2.up1.bn.num_batches_tracked": 0,
        "backbone.out_convs.1.conv.weight": np.ones((34, 2, 1, 1)),
        "backbone.out_convs.1.conv.bias": np.ones(34),
        "data_preprocessor.mean": np.zeros(3),
        "backbone.extra.weight": np.ones(1),  # no counterpart: kept
    }
    assert sorted(hourglass_from_mmpose(state_dict)) == [
        "backbone.extra.weight",
        "features.1.0.low2.up1.conv.bias",
        "features.1.0.low2.up1.conv.weight",
        "outs.1.conv.bias",
        "outs.1.conv.weight",
    ]
    del state_dict["backbone.hourglass_modules.1.0.low2.up1.bn.running_var"]
    with pytest.raises(ValueError, match=r"bn\.running_var"):
        hourglass_from_mmpose(state_dict)


def test_mmpose_network_of_the_fixtures(hourglass_state_dict):
    assert mmpose_network(hourglass_state_dict).startswith(
        "MMPose Associative Embedding"
    )
    rsn = read_checkpoint(fixture("mmpose_rsn_tiny", "model.pth"))
    assert mmpose_network(rsn) == "MMPose RSN"
    assert mmpose_network({"backbone.foo.weight": 1}) is None
    with pytest.raises(ValueError, match="no MMPose network kerapose knows"):
        higherhrnet_from_mmpose({"backbone.foo.weight": 1})
