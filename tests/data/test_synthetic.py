import contextlib
import io
import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kerapose.data.keypoint_specs import COCO_17
from kerapose.data.synthetic import make_synthetic_sample
from kerapose.data.synthetic import write_synthetic_coco
from kerapose.testing.fake_data import write_fake_coco

SIZE = (96, 128)


def _quiet_coco(path):
    # pycocotools prints progress on every load.
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    ann_path = write_synthetic_coco(root, num_images=32, image_size=SIZE)
    return root, ann_path, json.loads(ann_path.read_text())


def _keypoints(ann):
    return np.asarray(ann["keypoints"], float).reshape(-1, 3)


def test_loads_with_pycocotools(dataset):
    root, ann_path, data = dataset
    assert ann_path == root / "person_keypoints_train.json"
    coco = _quiet_coco(ann_path)
    assert len(coco.getImgIds()) == 32
    cat = coco.loadCats(1)[0]
    assert cat["name"] == "person"
    assert cat["keypoints"] == list(COCO_17.keypoint_names)
    assert [16, 14] in cat["skeleton"]
    assert min(min(pair) for pair in cat["skeleton"]) == 1
    for ann in data["annotations"]:
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0
        assert len(ann["keypoints"]) == 17 * 3
        assert ann["id"] > 0


def test_images_exist_and_decode(dataset):
    root, _, data = dataset
    for info in data["images"]:
        image = cv2.imread(str(root / "images" / info["file_name"]))
        assert image is not None
        assert image.shape == (info["height"], info["width"], 3)
        assert (info["height"], info["width"]) == SIZE


def test_visibility_semantics(dataset):
    _, _, data = dataset
    height, width = SIZE
    for ann in data["annotations"]:
        kpts = _keypoints(ann)
        v = kpts[:, 2]
        assert set(v) <= {0, 1, 2}
        assert ann["num_keypoints"] == int((v > 0).sum())
        assert np.all(kpts[v == 0, :2] == 0)
        seen = kpts[v > 0]
        assert np.all((seen[:, 0] >= 0) & (seen[:, 0] < width))
        assert np.all((seen[:, 1] >= 0) & (seen[:, 1] < height))
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and ann["area"] == pytest.approx(w * h)
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
        assert np.all((seen[:, 0] >= x) & (seen[:, 0] <= x + w))
        assert np.all((seen[:, 1] >= y) & (seen[:, 1] <= y + h))


def test_occlusion_cropping_and_empty_images(dataset):
    _, _, data = dataset
    v = np.stack([_keypoints(a)[:, 2] for a in data["annotations"]])
    assert (v == 1).any(axis=1).sum() >= 2
    assert (v == 0).any(axis=1).sum() >= 2
    assert (v == 2).any(axis=1).sum() >= 10
    with_people = {a["image_id"] for a in data["annotations"]}
    empty = [i["id"] for i in data["images"] if i["id"] not in with_people]
    assert 0 < len(empty) < 32


def _write_all(root, seed):
    ann_path = write_fake_coco(root, image_size=SIZE, seed=seed)
    files = sorted((root / "images").iterdir())
    return ann_path.read_bytes(), [f.read_bytes() for f in files]


def test_deterministic_for_a_seed(tmp_path):
    first = _write_all(tmp_path / "a", seed=3)
    again = _write_all(tmp_path / "b", seed=3)
    other = _write_all(tmp_path / "c", seed=4)
    assert first == again
    assert first[0] != other[0]
    assert first[1] != other[1]


def test_ground_truth_as_detections_scores_ap_one(dataset):
    _, ann_path, data = dataset
    gt = _quiet_coco(ann_path)
    dets = [
        {
            "image_id": a["image_id"],
            "category_id": 1,
            "keypoints": a["keypoints"],
            "score": 1.0,
        }
        for a in data["annotations"]
        if a["num_keypoints"] > 0
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.array(COCO_17.sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_make_synthetic_sample_in_memory():
    rng = np.random.default_rng(0)
    image, people = make_synthetic_sample(rng, (64, 80), max_people=2)
    assert image.dtype == np.uint8 and image.shape == (64, 80, 3)
    assert 1 <= len(people) <= 2
    for person in people:
        assert person["keypoints"].shape == (17, 3)
        assert len(person["bbox"]) == 4
    image, people = make_synthetic_sample(rng, (64, 80), num_people=0)
    assert people == []


def test_fake_coco_is_small(tmp_path):
    ann_path = write_fake_coco(tmp_path)
    data = json.loads(ann_path.read_text())
    assert len(data["images"]) == 4
    assert {i["height"] for i in data["images"]} == {96}
    assert {i["width"] for i in data["images"]} == {128}
