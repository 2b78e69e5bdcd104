"""PosePipeline: sources, detectors, batched top-down crops, skips."""

import json
import shutil

import numpy as np
import pytest

from kerapose import zoo
from kerapose.inference import predict_image
from kerapose.inference.pipeline import PosePipeline
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def sample():
    root = shared_path("data", "coco_sample")
    data = json.loads((root / "test_coco.json").read_text())
    files = {im["id"]: im["file_name"] for im in data["images"]}
    boxes = {}
    for ann in data["annotations"]:
        if ann["num_keypoints"] > 0:
            boxes.setdefault(files[ann["image_id"]], []).append(ann["bbox"])
    return root, boxes


@pytest.fixture(scope="module")
def hrnet():
    return zoo.load("test_hrnet", compile=False)


@pytest.fixture(scope="module")
def yolo():
    # One model and batch size for both tests: one compiled detector.
    return zoo.load("test_yolo_pose", compile=False)


def test_batched_crops_equal_one_image_at_a_time(sample, hrnet):
    root, boxes = sample

    def detector(image, name):
        b = np.asarray(boxes[name.split("/")[-1]], np.float32)
        return b, np.linspace(1.0, 0.5, len(b))

    pipe = PosePipeline(hrnet, detector=detector, batch_size=4)
    results = pipe(root)
    assert len(results) == 4 and pipe.report.skipped == []
    for name, result in zip(pipe.names, results):
        b = boxes[name.split("/")[-1]]
        single = predict_image(
            hrnet, name, boxes=b, box_scores=np.linspace(1.0, 0.5, len(b))
        )
        assert len(result) == len(b) > 0
        np.testing.assert_allclose(
            result.keypoints, single.keypoints, atol=1e-3
        )
        np.testing.assert_allclose(result.scores, single.scores, atol=1e-5)


def test_detections_file_gives_each_image_its_boxes(sample, hrnet):
    root, _ = sample
    det = root / "test_coco_det_AP_H_56.json"
    rows = json.loads(det.read_text())
    pipe = PosePipeline(hrnet, detector=det, min_box_score=0.5)
    results = pipe(str(root / "*.jpg"))
    for name, result in zip(pipe.names, results):
        image_id = int(name.split("/")[-1].split(".")[0])
        want = [
            r for r in rows if r["image_id"] == image_id and r["score"] >= 0.5
        ]
        assert len(result) == len(want)
        np.testing.assert_allclose(
            sorted(b[0] for b in result.boxes),
            sorted(r["bbox"][0] for r in want),
            atol=1e-3,
        )


def test_unreadable_files_are_skipped_and_named(sample, hrnet, tmp_path):
    root, _ = sample
    shutil.copy(root / "000000000785.jpg", tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    pipe = PosePipeline(hrnet)
    results = pipe(tmp_path)
    assert len(results) == 1 and pipe.names == [str(tmp_path / "a.jpg")]
    assert pipe.report.images_total == 2 and pipe.report.images_done == 1
    ((name, reason),) = pipe.report.skipped
    assert name.endswith("b.jpg") and "Cannot decode" in reason
    assert "1 skipped" in pipe.report.summary()


def test_bgr_arrays_equal_the_file(sample, hrnet):
    import cv2

    root, _ = sample
    path = root / "000000000785.jpg"
    bgr = cv2.imread(str(path))
    from_file = PosePipeline(hrnet)(path)[0]
    from_array = PosePipeline(hrnet, bgr=True)([bgr])[0]
    np.testing.assert_allclose(from_array.keypoints, from_file.keypoints)


def test_models_that_find_people_take_no_detector_and_find_people(sample, yolo):
    root, _ = sample
    with pytest.raises(ValueError, match="drop `detector`"):
        PosePipeline(yolo, detector=lambda im, n: ([], []))
    results = PosePipeline(yolo, score_threshold=0.001, batch_size=1)(root)
    assert len(results) == 4
    assert all(np.isfinite(r.keypoints).all() for r in results)


def test_yolo_pose_as_the_detector(sample, hrnet, yolo):
    root, _ = sample
    path = root / "000000000785.jpg"
    detector = yolo
    options = {"score_threshold": 0.001}
    pipe = PosePipeline(
        hrnet, detector=detector, detector_kwargs=options, min_box_score=0.2
    )
    (result,) = pipe(path)
    found = predict_image(detector, path, **options)
    keep = found.scores >= 0.2
    assert 0 < keep.sum() == len(result)
    np.testing.assert_allclose(result.boxes, found.boxes[keep], atol=1e-3)
    assert result.keypoints.shape == (keep.sum(), 17, 2)


@pytest.mark.parametrize(
    "source, error",
    [
        ("no/such/dir", FileNotFoundError),
        ("no/such/*.jpg", FileNotFoundError),
        ([3], ValueError),
    ],
)
def test_bad_sources_are_named(hrnet, source, error):
    with pytest.raises(error, match="such|Entry 0"):
        PosePipeline(hrnet)(source)
