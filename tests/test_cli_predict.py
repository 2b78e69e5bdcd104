"""`kerapose predict` on folders, with a detector, and on videos."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from pycocotools.coco import COCO

from kerapose.cli import main
from tests.conftest import shared_path

ROOT = Path(__file__).resolve().parents[1]


def _sample():
    return shared_path("data", "coco_sample")


def test_folder_with_a_detections_file_as_a_subprocess(tmp_path):
    """The JSON loads in pycocotools; a bad file is listed, exit 1."""
    root = _sample()
    folder = tmp_path / "photos"
    folder.mkdir()
    for jpg in root.glob("*.jpg"):
        shutil.copy(jpg, folder / jpg.name)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out, results = tmp_path / "drawn", tmp_path / "people.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "tensorflow"}
    command = [sys.executable, "-m", "kerapose", "predict", "test_hrnet"]
    command += [
        str(folder),
        "--detector",
        str(root / "test_coco_det_AP_H_56.json"),
    ]
    command += ["--min-box-score", "0.5", "--out", str(out)]
    command += ["--json", str(results), "--quiet"]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "skipped" in done.stdout and "broken.jpg" in done.stdout
    gt = COCO(str(root / "test_coco.json"))
    dt = gt.loadRes(str(results))
    wanted = [
        d
        for d in json.loads((root / "test_coco_det_AP_H_56.json").read_text())
        if d["score"] >= 0.5
    ]
    assert len(dt.anns) == len(wanted) > 0
    for image in gt.imgs.values():
        drawn = cv2.imread(str(out / image["file_name"]))
        assert drawn.shape[:2] == (image["height"], image["width"])
    assert not (out / "broken.jpg").exists()


def test_glob_with_a_yolo_pose_detector(tmp_path, capsys):
    root = _sample()
    pattern = str(root / "0000*.jpg")
    args = ["predict", "test_hrnet", pattern, "--detector", "test_yolo_pose"]
    args += ["--json", str(tmp_path / "r.json"), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "4 of 4 images done" in printed
    assert isinstance(json.loads((tmp_path / "r.json").read_text()), list)


def test_video_with_tracking_and_smoothing(tmp_path, capsys):
    image = cv2.imread(str(_sample() / "000000040083.jpg"))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(
        str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120)
    )
    for f in range(4):
        writer.write(
            np.ascontiguousarray(image[80:200, 40 + 5 * f : 200 + 5 * f])
        )
    writer.release()
    results = tmp_path / "r.json"
    args = ["predict", "test_yolo_pose", str(video), "--smooth", "--beta"]
    args += ["0.05", "--json", str(results), "--out", str(tmp_path / "o.mp4")]
    assert main(args) == 0
    people = json.loads(results.read_text())
    assert all("track_id" in p for p in people)
    assert {p["image_id"] for p in people} <= {0, 1, 2, 3}
    assert "4/4 frames" in capsys.readouterr().err


def test_bad_predict_arguments_exit_2(tmp_path, capsys):
    root = _sample()
    cases = [
        (["--out", str(tmp_path / "x.jpg")], "folder for the drawn images"),
        (["--boxes", str(tmp_path / "b.json")], "--boxes applies to one image"),
        (
            ["--detector", str(tmp_path / "none.json")],
            "Detections file not found",
        ),
        (["--detector", "no_such_model"], "no_such_model"),
    ]
    for extra, message in cases:
        assert main(["predict", "test_hrnet", str(root), *extra]) == 2
        assert message in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", "test_hrnet", str(empty)]) == 2
    assert "holds no image files" in capsys.readouterr().err
