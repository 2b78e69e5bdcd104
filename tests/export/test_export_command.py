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
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert out.stat().st_size > 0
    assert "keypoint displacement" in printed and "PASSED" in printed
    # A threshold the file cannot meet: the check fails with status 1.
    args = ["export", str(saved), "-o", str(out), "-q", "dynamic"]
    args += ["--num-verify", "4", "--max-heatmap-diff", "1e-9"]
    assert main(args) == 1
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="the error is for the JAX and PyTorch backends",
)
def test_export_on_another_backend_says_how(saved, tmp_path, capsys):
    out = tmp_path / "m.tflite"
    assert main(["export", str(saved), "-o", str(out)]) == 2
    assert "KERAS_BACKEND=tensorflow" in capsys.readouterr().err
    assert not out.exists()
