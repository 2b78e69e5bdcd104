"""Video through the pipeline: tracked ids, smoothing, the drawn file."""

import json

import cv2
import numpy as np
import pytest

from kerapose import zoo
from kerapose.inference.pipeline import PosePipeline
from kerapose.inference.smoothing import KeypointSmoother
from kerapose.inference.tracking import PoseTracker
from kerapose.inference.video import predict_video
from tests.conftest import shared_path

FRAMES, STEP, SIZE = 10, 6, (240, 320)  # frames, px per frame, (h, w)


@pytest.fixture(scope="module")
def moving_crop(tmp_path_factory):
    """A video of a window sliding over a still photo, and its boxes."""
    root = shared_path("data", "coco_sample")
    data = json.loads((root / "test_coco.json").read_text())
    image = next(i for i in data["images"] if i["id"] == 40083)
    boxes = np.array(
        [
            a["bbox"]
            for a in data["annotations"]
            if a["image_id"] == 40083 and a["num_keypoints"] > 0
        ],
        np.float32,
    )
    photo = cv2.imread(str(root / image["file_name"]))
    path = tmp_path_factory.mktemp("video") / "moving.avi"
    h, w = SIZE
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h)
    )
    shifted = []
    for f in range(FRAMES):
        x0, y0 = 60 + STEP * f, 80
        writer.write(np.ascontiguousarray(photo[y0 : y0 + h, x0 : x0 + w]))
        shifted.append(boxes - np.array([x0, y0, 0, 0], np.float32))
    writer.release()
    return path, shifted


def test_track_ids_stay_stable_and_the_video_is_written(moving_crop, tmp_path):
    path, shifted = moving_crop

    def detector(image, name):
        return shifted[int(name.split("_")[1])], None

    pipe = PosePipeline(
        zoo.load("test_hrnet", compile=False), detector=detector, batch_size=5
    )
    out = tmp_path / "drawn.avi"
    results = predict_video(
        pipe,
        path,
        out=out,
        tracker=PoseTracker(match="iou"),
        smoother=KeypointSmoother(min_cutoff=1.0, beta=0.01, fps=10.0),
        progress=False,
    )
    assert len(results) == FRAMES
    ids = {tuple(r.track_ids.tolist()) for r in results}
    assert len(shifted[0]) == 2 and ids == {(0, 1)}
    capture = cv2.VideoCapture(str(out))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape[:2] == SIZE and count == FRAMES
    assert all(np.isfinite(r.keypoints).all() for r in results)


def test_bad_videos_are_named(tmp_path):
    pipe = PosePipeline(zoo.load("test_hrnet", compile=False))
    with pytest.raises(FileNotFoundError, match="Video file not found"):
        predict_video(pipe, tmp_path / "none.mp4", progress=False)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="Cannot open video"):
        predict_video(pipe, bad, progress=False)
    with pytest.raises(ValueError, match="tracker"):
        predict_video(pipe, bad, smoother=KeypointSmoother(), progress=False)
