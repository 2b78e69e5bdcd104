"""examples/tflite_infer.py: a .tflite file on an image, without Keras."""

import json
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.export.conftest import COCO_SAMPLE
from tests.export.conftest import on_tf
from tests.export.conftest import peaked_test_hrnet

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "tflite_infer.py"
pytestmark = [pytest.mark.tflite, pytest.mark.tf_only, on_tf]

# Runs the script's main in a fresh interpreter, then fails if anything
# heavier than NumPy, OpenCV and LiteRT was imported.
RUNNER = """
import runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
heavy = [m for m in ("keras", "tensorflow", "kerapose", "jax", "torch")
         if m in sys.modules]
assert not heavy, f"imported {heavy}"
"""


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("ai_edge_litert")
    return peaked_test_hrnet()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = COCO_SAMPLE / "000000196141.jpg"
    if path.exists():
        return path
    import cv2

    path = tmp_path_factory.mktemp("img") / "noise.jpg"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 256, (240, 320, 3), np.uint8))
    return path


@pytest.mark.parametrize("include_decode", [False, True])
def test_runs_without_keras_and_matches_predict_image(
    model, image, tmp_path, include_decode
):
    from kerapose.export import export_tflite
    from kerapose.inference import predict_image

    tflite = export_tflite(
        model, tmp_path / "m.tflite", include_decode=include_decode
    )
    boxes = [[100.0, 40.0, 120.0, 200.0], [20.0, 30.0, 80.0, 90.0]]
    out = tmp_path / "new_dir" / "drawn.jpg"  # the folder is created
    points = tmp_path / "points.json"
    args = [str(SCRIPT), str(tflite), str(image), "--out", str(out)]
    args += ["--json", str(points), "--threads", "1"]
    for box in boxes:
        args += ["--box", *map(str, box)]
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "person 1:" in done.stdout
    assert out.stat().st_size > 0
    keypoints = np.asarray(json.loads(points.read_text()))
    expected = predict_image(model, str(image), boxes=boxes)
    assert keypoints.shape == (2, 17, 3)
    np.testing.assert_allclose(
        keypoints[..., :2], expected.keypoints, atol=0.05
    )
    np.testing.assert_allclose(
        keypoints[..., 2], expected.keypoint_scores, rtol=1e-3, atol=1e-3
    )


def test_bad_output_paths_fail_before_the_model_loads(tmp_path, image):
    pytest.importorskip("ai_edge_litert")
    script = runpy.run_path(str(SCRIPT))
    (tmp_path / "a_file").write_text("")
    missing_model = str(tmp_path / "missing.tflite")
    for option, value, message in [
        ("--out", "drawn.gif", "must end in one of"),
        ("--out", "a_file/drawn.jpg", "cannot create its folder"),
        ("--json", "points.txt", "must end in one of"),
    ]:
        argv = [missing_model, str(image), option, str(tmp_path / value)]
        with pytest.raises(SystemExit, match=message):
            script["main"](argv)
