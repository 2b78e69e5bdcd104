"""`kerapose export`: a saved .keras model to a checked .tflite file."""

import keras
import pytest

from kerapose.cli import main
from tests.export.conftest import COCO_SAMPLE
from tests.export.conftest import on_tf
from tests.export.conftest import peaked_test_hrnet


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "peaked.keras"
    peaked_test_hrnet().save(path)
    return path


@pytest.mark.tflite
@pytest.mark.tf_only
@on_tf
def test_export_int8_from_a_keras_file(saved, tmp_path, capsys):
    pytest.importorskip("ai_edge_litert")
    out = tmp_path / "m.tflite"
    args = ["export", str(saved), "-o", str(out), "-q", "int8"]
    # Random weights put int8 peaks further off than a trained model's.
    args += ["--num-calibration", "16", "--num-verify", "8"]
    args += ["--max-keypoint-px", "4"]
    if (COCO_SAMPLE / "test_coco.json").exists():
        args += [
            "--data",
            str(COCO_SAMPLE / "test_coco.json"),
            str(COCO_SAMPLE),
        ]
    else:
        args += ["--synthetic-calibration"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert out.stat().st_size > 0
    assert "keypoint displacement" in printed and "PASSED" in printed
    # Progress bars over the calibration and the check ("12ms/image").
    assert "Converting to TFLite, calibrating" in printed
    assert "/image" in printed.split("Converting")[1].split("Exported")[0]
    assert "/image" in printed.split("Exported")[1]
    # A threshold the file cannot meet: the check fails with status 1 and
    # the file leaves -o under a name that says so.
    args = ["export", str(saved), "-o", str(out), "-q", "dynamic"]
    args += ["--num-verify", "4", "--max-heatmap-diff", "1e-9", "--quiet"]
    assert main(args) == 1
    printed = capsys.readouterr().out
    assert "FAILED" in printed and "/image" not in printed
    failed = tmp_path / "m.failed.tflite"
    assert not out.exists() and failed.stat().st_size > 0
    assert f"moved it to {failed}" in printed


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="the error is for the JAX and PyTorch backends",
)
def test_export_on_another_backend_says_how(saved, tmp_path, capsys):
    out = tmp_path / "m.tflite"
    assert main(["export", str(saved), "-o", str(out)]) == 2
    assert "KERAS_BACKEND=tensorflow" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="the error is for the JAX and PyTorch backends",
)
def test_another_backend_is_refused_before_anything_else(tmp_path, capsys):
    # Neither the missing model file nor the bad output name is reached.
    args = ["export", str(tmp_path / "missing.keras"), "-o", "m.txt"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "KERAS_BACKEND=tensorflow" in err and "missing" not in err


@on_tf
@pytest.mark.parametrize(
    "extra, msg",
    [
        (["-q", "int8"], "pass --data"),
        (["--data", "missing.json", "."], "no annotation file"),
        (["--input-size", "64", "64"], "apply to zoo names"),
    ],
)
def test_refused_before_the_model_loads(saved, tmp_path, capsys, extra, msg):
    out = tmp_path / "m.tflite"
    # A zoo name with missing weights would fail the load: the check is
    # first.
    name = str(saved) if "--input-size" in extra else "test_hrnet"
    args = ["export", name, "-o", str(out), *extra]
    if name == "test_hrnet":
        args += ["--weights", str(tmp_path / "missing.weights.h5")]
    assert main(args) == 2
    assert msg in capsys.readouterr().err
    assert not out.exists()


@on_tf
def test_bad_output_name_is_refused_first(tmp_path, capsys):
    args = ["export", "test_hrnet", "-o", str(tmp_path / "m.tfl")]
    args += ["--weights", str(tmp_path / "missing.weights.h5")]
    assert main(args) == 2
    assert "must end in .tflite" in capsys.readouterr().err


@pytest.mark.tflite
@pytest.mark.tf_only
@on_tf
def test_export_a_training_checkpoint_with_its_own_keypoints(tmp_path, capsys):
    """`best.weights.h5` of examples/train_top_down.py (Keras
    `save_weights`) for a 5-keypoint model exports with --num-keypoints."""
    pytest.importorskip("ai_edge_litert")
    from kerapose import zoo

    model = zoo.load(
        "test_hrnet", num_keypoints=5, input_shape=(64, 32, 3), compile=False
    )
    weights = tmp_path / "best.weights.h5"
    model.save_weights(weights)
    out = tmp_path / "m.tflite"
    args = ["export", "test_hrnet", "--weights", str(weights), "-o", str(out)]
    args += ["--input-size", "64", "32", "--num-verify", "2", "--quiet"]
    assert main(args) != 0  # the preset's 17 keypoints do not fit the file
    assert "--num-keypoints" in capsys.readouterr().err
    assert main(args + ["--num-keypoints", "5"]) == 0
    assert "PASSED" in capsys.readouterr().out
    assert out.stat().st_size > 0
