"""export_onnx: real .onnx files with a dynamic batch, run in ONNX Runtime.

The conversion is tf2onnx on the TensorFlow graph. On JAX and PyTorch the
model goes through a `.keras` file to a TensorFlow-backend subprocess
(about 10 s a file here), so those passes convert the cheap models only;
the graph they write is the TensorFlow pass's.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kerapose.cli import main
from tests.export.conftest import INPUT_SHAPE
from tests.export.conftest import peaked_test_hrnet

for _package in ("onnx", "onnxruntime", "tf2onnx"):
    pytest.importorskip(
        _package, reason="ONNX export needs pip install 'kerapose[onnx]'"
    )

ROOT = Path(__file__).resolve().parents[2]
on_tf = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the same conversion as on TensorFlow, plus a 15 s subprocess",
)


def _he_scaled(model, seed=0):
    """Peaked outputs (see conftest): keypoint comparisons mean something."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if v.path.endswith("kernel"):
            std = np.sqrt(2.0 / np.prod(v.shape[:-1]))
            v.assign(rng.normal(0.0, std, v.shape).astype("float32"))
    return model


def _yolo_pose():
    """Scores spread over (0, 1), as in test_yolo_pose_export.py."""
    from kerapose import zoo

    model = _he_scaled(zoo.load("test_yolo_pose", compile=False))
    for v in model.weights:
        if "/det/" in v.path:
            scale = 0.0 if v.path.endswith("bias") else 300.0
            v.assign(keras.ops.convert_to_numpy(v) * scale)
    return model


def _load(name):
    from kerapose import zoo

    if name == "test_hrnet":
        return peaked_test_hrnet()
    if name == "test_yolo_pose":
        return _yolo_pose()
    shape = INPUT_SHAPE if name == "test_rsn" else None
    return _he_scaled(zoo.load(name, input_shape=shape, compile=False))


FAMILIES = [
    # (zoo name, output names, score threshold of the check)
    pytest.param("test_hrnet", ["heatmaps"], 0.0, id="top_down"),
    # RSN: every unit's heatmaps (batch, U, h, w, K); 15 s to convert.
    pytest.param("test_rsn", ["heatmaps"], 0.0, id="rsn", marks=on_tf),
    pytest.param(
        "test_hourglass_ae", ["output_0", "output_1"], 0.0, id="bottom_up"
    ),
    pytest.param("test_yolo_pose", ["raw_rows"], 0.25, id="yolo", marks=on_tf),
]


def _keras_outputs(model, images):
    if getattr(model, "task", None) == "single_stage":
        from kerapose.export.yolo_pose import raw_rows

        return [keras.ops.convert_to_numpy(raw_rows(model(images)))]
    out = model(images, training=False)
    out = out if isinstance(out, (list, tuple)) else [out]
    return [keras.ops.convert_to_numpy(o) for o in out]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (model, its .onnx file), each converted once."""
    from kerapose.export import export_onnx

    folder = tmp_path_factory.mktemp("onnx")
    files = {}

    def get(name):
        if name not in files:
            model = _load(name)
            files[name] = model, export_onnx(model, folder / f"{name}.onnx")
        return files[name]

    return get


@pytest.mark.parametrize("name, outputs, score_threshold", FAMILIES)
def test_family_file_matches_keras(name, outputs, score_threshold, exported):
    from kerapose.export import ONNXRuntimeModel
    from kerapose.export import verify_onnx

    model, path = exported(name)
    runner = ONNXRuntimeModel(path)
    shape = tuple(model.input_shape[1:])
    assert runner.input_shape == ("batch", *shape)
    session = runner.session
    assert [o.name for o in session.get_outputs()] == outputs
    assert all(o.shape[0] == "batch" for o in session.get_outputs())
    # Batch sizes the export never saw.
    images = np.random.default_rng(0).uniform(size=(3, *shape))
    images = images.astype("float32")
    expected = _keras_outputs(model, images)
    for n in (1, 3):
        got = runner(images[:n])
        assert [g.shape for g in got] == [e[:n].shape for e in expected]
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e[:n], atol=1e-4 * np.abs(e).max())
    # The same 3 images: eager JAX compiles each new batch shape anew.
    report = verify_onnx(
        path,
        model,
        images,
        max_mean_keypoint_px=0.01,
        score_threshold=score_threshold,
    )
    assert report.passed and report.num_images == 3
    assert report.runtime == "ONNX Runtime"
    assert str(report).startswith("ONNX Runtime vs Keras on 3 images")
    if name == "test_yolo_pose":
        assert report.max_raw_diff < 1e-3
        # Decoded people match ambiguously where near-duplicates tie (the
        # raw rows above are compared one to one): 284 of 299 measured
        # with onnxruntime 1.32 and tf2onnx 1.17.
        assert report.num_matched >= 0.9 * report.num_detections > 0
    else:
        assert report.max_heatmap_diff < 1e-4 * report.heatmap_peak
        assert report.mean_keypoint_px == 0.0 and report.num_keypoints > 0
    print(f"{name}: {str(report).splitlines()[1].strip()}")


@on_tf
def test_top_down_decode_in_graph(tmp_path):
    from kerapose.export import ONNXRuntimeModel
    from kerapose.export import export_onnx
    from kerapose.export import verify_onnx

    model = peaked_test_hrnet()
    path = export_onnx(model, tmp_path / "d.onnx", include_decode=True)
    runner = ONNXRuntimeModel(path)
    assert runner.session.get_outputs()[0].name == "keypoints"
    images = np.random.default_rng(1).normal(size=(3, *INPUT_SHAPE))
    (got,) = runner(images.astype("float32"))
    expected = model.predict(images, verbose=0)
    assert got.shape == (3, 17, 3)
    np.testing.assert_allclose(
        got[..., :2], keras.ops.convert_to_numpy(expected["keypoints"])
    )
    report = verify_onnx(path, model, num_images=3, max_mean_keypoint_px=0.0)
    assert report.max_heatmap_diff is None and report.passed


def test_include_decode_refused_without_a_top_down_decode(tmp_path):
    from kerapose import zoo
    from kerapose.export import export_onnx

    model = zoo.load("test_hourglass_ae", compile=False)
    with pytest.raises(ValueError, match="top-down models"):
        export_onnx(model, tmp_path / "m.onnx", include_decode=True)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    "where, message",
    [
        ("read_only/m.onnx", "not writable"),
        ("a_file/m.onnx", "is a file, not a folder"),
        ("m.tflite", "must end in .onnx"),
    ],
)
def test_bad_output_path_fails_before_anything(
    where, message, tmp_path, monkeypatch
):
    from kerapose.export import export_onnx

    (tmp_path / "a_file").write_text("")
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    if os.access(read_only, os.W_OK):  # root writes anywhere: say it
        import kerapose.cli_support as support

        monkeypatch.setattr(
            support.os, "access", lambda p, mode: Path(p) != read_only
        )
    # Not a model at all: anything done before the path check fails.
    with pytest.raises(ValueError, match=message):
        export_onnx(object(), tmp_path / where)


def test_missing_packages_name_the_extra(tmp_path, monkeypatch, capsys):
    import importlib.util

    from kerapose.export import export_onnx

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda n, *a: None if n == "tf2onnx" else find_spec(n, *a),
    )
    with pytest.raises(ImportError, match=r"kerapose\[onnx\]"):
        export_onnx(object(), tmp_path / "m.onnx")
    args = ["export", "test_hrnet", "-o", str(tmp_path / "m.onnx")]
    assert main([*args, "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "tf2onnx" in err and "kerapose[onnx]" in err


def test_verify_fails_against_another_model(exported):
    from kerapose.export import ONNXVerificationError
    from kerapose.export import TFLiteVerificationError
    from kerapose.export import verify_onnx

    model, path = exported("test_hourglass_ae")
    weights = [keras.ops.convert_to_numpy(v) for v in model.weights]
    _he_scaled(model, seed=1)  # same shapes, other weights
    try:
        with pytest.raises(ONNXVerificationError, match="max output") as e:
            verify_onnx(path, model, num_images=3, max_heatmap_diff=1e-3)
        assert isinstance(e.value, TFLiteVerificationError)
        assert not e.value.report.passed
        report = verify_onnx(
            path, model, num_images=3, max_mean_keypoint_px=0.5,
            raise_on_failure=False,
        )  # fmt: skip
    finally:
        for v, w in zip(model.weights, weights):
            v.assign(w)
    assert not report.passed and "displacement" in report.failures[0]


@on_tf
def test_cli_exports_and_checks_onnx(tmp_path, capsys):
    saved = tmp_path / "peaked.keras"
    peaked_test_hrnet().save(saved)
    out = tmp_path / "new" / "m.onnx"
    args = ["export", str(saved), "-o", str(out), "--format", "onnx"]
    # -q is a TFLite option, refused before the model loads.
    assert main([*args, "-q", "int8"]) == 2
    assert "-q applies to TFLite" in capsys.readouterr().err
    # A threshold no file meets: the file matches Keras (0 px), the check
    # fails all the same: status 1, the file set aside.
    args += ["--num-verify", "3", "--score-threshold", "0", "--quiet"]
    args += ["--max-keypoint-px", "-1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "kerapose.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    printed = done.stdout
    assert "Converting to ONNX" in printed
    assert "checking it in ONNX Runtime" in printed
    assert "ONNX Runtime vs Keras on 3 images" in printed
    assert "heatmap diff max" in printed
    assert "keypoint displacement mean 0.000 px" in printed
    assert "FAILED: mean keypoint displacement" in printed
    assert not out.exists() and (out.parent / "m.failed.onnx").is_file()
