"""Registry-parametrized checks: every tiny preset gets them for free."""

import copy
import hashlib
import json
import socket

import numpy as np
import pytest

from kerapose import zoo
from kerapose.convert import CheckpointMismatchError
from kerapose.testing.test_case import to_numpy
from kerapose.zoo import registry

TEST_PRESETS = zoo.list_models("test_*")


def _input(model, batch=1, seed=0):
    shape = model.input_shape[1:]
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, *shape)).astype("float32")


def test_there_are_test_presets():
    assert "test_hrnet" in TEST_PRESETS


@pytest.mark.parametrize("name", TEST_PRESETS)
def test_preset_builds_and_runs(name):
    model = zoo.load(name)
    x = _input(model, 2)
    out = model.predict(x, verbose=0)
    k = model.num_keypoints
    if model.task == "top_down":
        assert out["keypoints"].shape == (2, k, 2)
    elif model.task == "single_stage":
        detections = model.decoder.max_detections
        assert out["keypoints"].shape == (2, detections, k, 2)
        assert out["num_detections"].shape == (2,)
    else:  # bottom-up: the raw maps, grouped on the host
        maps = out if isinstance(out, list) else out["outputs"]
        h, w = x.shape[1:3]
        assert [tuple(m.shape[:3]) for m in maps] == [
            (2, h // s, w // s) for s in model.output_strides
        ]


@pytest.mark.parametrize("name", TEST_PRESETS)
def test_save_preset_round_trip(name, tmp_path):
    model = zoo.load(name)
    x = _input(model)
    zoo.save_preset(model, tmp_path / "preset")
    files = sorted(p.name for p in (tmp_path / "preset").iterdir())
    assert files == ["config.json", "metadata.json", "model.weights.h5"]
    revived = zoo.load(str(tmp_path / "preset"))
    assert type(revived) is type(model)
    expected, got = model(x), revived(x)
    if not isinstance(expected, (list, tuple)):
        expected, got = [expected], [got]
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-6)


def test_unknown_name_suggests_without_correcting():
    with pytest.raises(ValueError, match="Did you mean: hrnet_w32"):
        zoo.load("hrnet_w23")
    with pytest.raises(ValueError, match="list_models"):
        zoo.load("clowntown")
    with pytest.raises(ValueError, match="Known tags: coco_256x192"):
        zoo.load("hrnet_w32.coco_999x1")


def test_path_like_name_is_not_a_registry_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a kerapose preset"):
        zoo.load(str(tmp_path / "hrnet_w32"))


def test_list_models_and_describe():
    assert zoo.list_models("hrnet_*") == [
        "hrnet_w18_small",
        "hrnet_w32",
        "hrnet_w48",
    ]
    # pretrained: only tags whose weights can be loaded, here by download
    # (tags with a local file only: tests/zoo/test_download.py).
    assert zoo.list_models("hrnet_w32.*", pretrained=True) == [
        "hrnet_w32.coco_256x192",
        "hrnet_w32.coco_384x288",
    ]
    info = zoo.describe("hrnet_w32.coco_384x288")
    assert info["family"] == "hrnet"
    assert list(info["tags"]) == ["coco_384x288"]
    assert info["tags"]["coco_384x288"]["image_shape"] == [384, 288, 3]
    assert info["default_tag"] == "coco_256x192"


def test_tag_sets_input_size():
    model = zoo.load("hrnet_w32.coco_384x288", compile=False)
    assert model.input_shape == (None, 384, 288, 3)
    assert model.output_shape == (None, 96, 72, 17)
    assert model.codec.heatmap_size == (96, 72)


def test_input_shape_override():
    model = zoo.load("test_hrnet", input_shape=(96, 64, 3))
    assert model.output_shape == (None, 24, 16, 17)
    assert model.codec.input_size == (96, 64)


def test_default_weights_missing_says_how_to_get_them(monkeypatch):
    # Offline: the tag's URL points at a closed local port. `zoo.load`
    # first: importing the families registers the presets (no shadowing).
    load = zoo.load
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    preset = copy.deepcopy(registry.read_builtin_presets()["hrnet_w32"])
    weights = preset["tags"]["coco_256x192"]["weights"]
    weights["url"] = f"http://127.0.0.1:{port}/" + weights["url"].split("/")[-1]
    monkeypatch.setitem(registry.PRESETS, "hrnet_w32", preset)
    with pytest.raises(ConnectionError, match="kerapose convert hrnet_w32"):
        load("hrnet_w32", weights="default")


def test_bad_weights_argument():
    with pytest.raises(FileNotFoundError, match="not found"):
        zoo.load("test_hrnet", weights="no/such/file.weights.h5")
    with pytest.raises(TypeError, match="weights"):
        zoo.load("test_hrnet", weights=3)


def test_weights_round_trip_strict(tmp_path):
    model = zoo.load("test_hrnet")
    path = zoo.save_weights(model, tmp_path / "m.weights.h5")
    other = zoo.load("test_hrnet", weights=str(path))
    x = _input(model)
    np.testing.assert_allclose(to_numpy(other(x)), to_numpy(model(x)))


def test_corrupt_weights_file(tmp_path):
    model = zoo.load("test_hrnet")
    path = zoo.save_weights(model, tmp_path / "m.weights.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="truncated or not an HDF5"):
        zoo.load("test_hrnet", weights=str(path))
    path.write_text("not a weights file")
    with pytest.raises(ValueError, match="truncated or not an HDF5"):
        zoo.load("test_hrnet", weights=str(path))


def test_mismatched_weights_are_refused_whole(tmp_path):
    small = zoo.load("test_hrnet", num_keypoints=5)
    path = zoo.save_weights(small, tmp_path / "k5.weights.h5")
    model = zoo.load("test_hrnet")
    before = [to_numpy(v).copy() for v in model.weights]
    from kerapose.zoo import load_weights

    with pytest.raises(CheckpointMismatchError, match="heatmap_head/kernel"):
        load_weights(model, path)
    after = [to_numpy(v) for v in model.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_num_keypoints_override_loads_backbone_only(tmp_path):
    full = zoo.load("test_hrnet")
    path = zoo.save_weights(full, tmp_path / "k17.weights.h5")
    model = zoo.load("test_hrnet", weights=str(path), num_keypoints=5)
    assert model.output_shape[-1] == 5
    for a, b in zip(full.backbone.weights, model.backbone.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_url_download_checks_sha256(tmp_path):
    model = zoo.load("test_hrnet")
    path = zoo.save_weights(model, tmp_path / "remote.weights.h5")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    url = path.as_uri()
    loaded = zoo.load("test_hrnet", weights=url, sha256=digest)
    x = _input(model)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)))
    cached = zoo.kerapose_home() / "weights" / "remote.weights.h5"
    assert cached.is_file()
    with pytest.raises(ValueError, match="sha256 mismatch"):
        zoo.download(url.replace("remote", "remote"), "0" * 64, "other")
    assert not (zoo.kerapose_home() / "other" / "remote.weights.h5").exists()
    with pytest.raises(ValueError, match="without a sha256"):
        zoo.load("test_hrnet", weights=url)


def test_preset_dir_with_broken_config(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        zoo.load(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"class_name": "x"}))
    with pytest.raises(Exception):
        zoo.load(str(tmp_path))


@pytest.fixture(scope="module")
def k16(tmp_path_factory):
    """A 16-keypoint model, its kerapose file and its Keras file."""
    model = zoo.load("test_hrnet", num_keypoints=16, compile=False)
    folder = tmp_path_factory.mktemp("k16")
    kerapose_file = zoo.save_weights(model, folder / "k16.weights.h5")
    # examples/train_top_down.py's best / last.weights.h5 are written by
    # Keras' `model.save_weights()`, keyed by layer class and order.
    keras_file = folder / "best.weights.h5"
    model.save_weights(keras_file)
    return model, str(kerapose_file), str(keras_file)


def test_num_keypoints_override_loads_a_head_of_that_size(k16, caplog):
    # The 16-keypoint head of a 16-keypoint file was dropped with a warning.
    trained, path, _ = k16
    with caplog.at_level("WARNING", logger="kerapose"):
        model = zoo.load("test_hrnet", num_keypoints=16, weights=path)
    assert "backbone only" not in caplog.text
    x = _input(model)
    np.testing.assert_allclose(to_numpy(model(x)), to_numpy(trained(x)))


def test_keras_save_weights_file_loads(k16, caplog):
    trained, _, path = k16
    model = zoo.load("test_hrnet", num_keypoints=16, weights=path)
    x = _input(model)
    np.testing.assert_allclose(to_numpy(model(x)), to_numpy(trained(x)))
    with caplog.at_level("WARNING", logger="kerapose"):
        k5 = zoo.load("test_hrnet", num_keypoints=5, weights=path)
    assert "backbone only" in caplog.text
    for a, b in zip(trained.backbone.weights, k5.backbone.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    from kerapose.zoo import load_weights

    before = to_numpy(k5.weights[0]).copy()
    with pytest.raises(ValueError, match="(?s)Keras weights file.*--num-key"):
        load_weights(k5, path)
    np.testing.assert_array_equal(to_numpy(k5.weights[0]), before)
