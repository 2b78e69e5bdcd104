import json
from pathlib import Path

import numpy as np
import pytest

from kerapose.data.coco import box_to_center_scale
from kerapose.data.coco import load_coco_instances
from kerapose.data.keypoint_specs import COCO_17
from kerapose.data.keypoint_specs import CROWDPOSE_14
from kerapose.data.keypoint_specs import MPII_16
from kerapose.testing.fake_data import write_fake_coco

# tf.data / NumPy only: independent of the Keras backend.
pytestmark = pytest.mark.tf_only

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ASPECT = 192 / 256


def _shared(*parts):
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (shared test data not checked out)")
    return path


@pytest.fixture
def coco_sample():
    root = _shared("coco_sample")
    return root / "test_coco.json", root


@pytest.fixture
def fake(tmp_path):
    ann = write_fake_coco(tmp_path, num_images=8, image_size=(48, 64))
    return ann, tmp_path / "images", json.loads(ann.read_text())


def _rewrite(ann, data):
    ann.write_text(json.dumps(data))
    return ann


def _official_center_scale(box, width, height, aspect):
    """The official loader: sanitise the box, then `_xywh2cs`."""
    x, y, w, h = box
    x1, y1 = max(0, x), max(0, y)
    x2 = min(width - 1, x1 + max(0, w - 1))
    y2 = min(height - 1, y1 + max(0, h - 1))
    x, y, w, h = x1, y1, x2 - x1, y2 - y1
    center = np.array([x + w * 0.5, y + h * 0.5])
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return center, np.array([w / 200.0, h / 200.0]) * 1.25


def test_real_sample_train_mode(coco_sample):
    ann, image_dir = coco_sample
    instances, report = load_coco_instances(ann, image_dir)
    assert report.spec is COCO_17
    assert (report.total, report.kept, report.no_keypoints) == (14, 12, 2)
    assert sum(report.skipped.values()) == report.total - report.kept
    n = report.kept
    assert instances["keypoints"].shape == (n, 17, 2)
    assert instances["visibility"].shape == (n, 17)
    assert instances["center"].shape == instances["scale"].shape == (n, 2)
    assert instances["bbox"].shape == (n, 4)
    for key in ("image_id", "area", "score", "image_path"):
        assert instances[key].shape == (n,)
    assert all(Path(p).is_file() for p in instances["image_path"])
    assert (instances["score"] == 1).all()
    assert (instances["visibility"].max(axis=1) > 0).all()

    data = json.loads(ann.read_text())
    images = {img["id"]: img for img in data["images"]}
    by_id = {a["id"]: a for a in data["annotations"]}
    for i, ann_id in enumerate(instances["annotation_id"]):
        a = by_id[int(ann_id)]
        img = images[a["image_id"]]
        center, scale = _official_center_scale(
            a["bbox"], img["width"], img["height"], ASPECT
        )
        np.testing.assert_allclose(instances["center"][i], center, rtol=1e-6)
        np.testing.assert_allclose(instances["scale"][i], scale, rtol=1e-6)
        kpts = np.asarray(a["keypoints"], np.float32).reshape(17, 3)
        np.testing.assert_array_equal(instances["visibility"][i], kpts[:, 2])
        np.testing.assert_array_equal(instances["keypoints"][i], kpts[:, :2])


def test_real_sample_eval_gt_keeps_zero_keypoint_people(coco_sample):
    ann, image_dir = coco_sample
    instances, report = load_coco_instances(ann, image_dir, mode="eval")
    assert (report.total, report.kept) == (14, 14)
    assert (instances["visibility"].max(axis=1) == 0).sum() == 2


def test_real_sample_detections(coco_sample):
    ann, image_dir = coco_sample
    det_file = image_dir / "test_coco_det_AP_H_56.json"
    dets = json.loads(det_file.read_text())
    instances, report = load_coco_instances(
        ann, image_dir, mode="eval", det_file=det_file, det_score_threshold=0.3
    )
    kept = [d for d in dets if d["score"] >= 0.3]
    assert report.total == len(dets) == 118
    assert report.kept == len(kept)
    assert report.low_score == len(dets) - len(kept)
    np.testing.assert_allclose(
        instances["score"], [d["score"] for d in kept], rtol=1e-6
    )
    assert (instances["annotation_id"] == -1).all()
    assert (instances["visibility"] == 0).all()
    # Detection boxes are used as given (no clipping), as officially.
    center, scale = box_to_center_scale(kept[0]["bbox"], ASPECT)
    np.testing.assert_allclose(instances["center"][0], center)
    np.testing.assert_allclose(instances["scale"][0], scale)


def test_box_to_center_scale_pads_to_aspect():
    center, scale = box_to_center_scale([10, 20, 30, 80], ASPECT)
    np.testing.assert_allclose(center, [25, 60])
    # Tall box: width grows to 80 * 0.75 = 60; then / 200 * 1.25.
    np.testing.assert_allclose(scale, [60 / 160, 80 / 160])
    _, scale = box_to_center_scale([0, 0, 90, 60], ASPECT)
    np.testing.assert_allclose(scale, [90 / 160, 120 / 160])


def test_spec_comes_from_the_keypoint_names(coco_sample, tmp_path):
    root = _shared("crowdpose")
    _, report = load_coco_instances(root / "test_crowdpose.json", root)
    assert report.spec is CROWDPOSE_14
    ann, image_dir = coco_sample
    with pytest.raises(ValueError, match="16"):
        load_coco_instances(ann, image_dir, spec=MPII_16)
    # Five unknown names make a five-keypoint spec, which the 17-point
    # annotations do not fit: the error names the annotation.
    data = json.loads(ann.read_text())
    data["categories"][0]["keypoints"] = ["a", "b", "c", "d", "e"]
    odd = _rewrite(tmp_path / "odd.json", data)
    first = data["annotations"][0]["id"]
    with pytest.raises(ValueError, match=f"annotation id {first}.*not 5 x"):
        load_coco_instances(odd, image_dir)


def test_fake_data_loads(fake):
    ann, image_dir, data = fake
    instances, report = load_coco_instances(ann, image_dir)
    assert report.total == len(data["annotations"]) == report.kept
    assert str(report).startswith(f"{ann} (train): kept {report.kept}")


def test_skip_reasons_are_counted(fake):
    ann, image_dir, data = fake
    anns = data["annotations"]
    per_image = {}
    for a in anns:
        per_image.setdefault(a["image_id"], []).append(a)
    anns[0]["iscrowd"] = 1
    anns[1]["keypoints"] = [0] * 51
    anns.append({**anns[2], "id": 999, "bbox": [5, 5, 0, 10]})
    anns.append({**anns[2], "id": 998, "category_id": 7})
    anns.append({**anns[2], "id": 997, "image_id": 12345})
    _rewrite(ann, data)
    files = {img["id"]: img["file_name"] for img in data["images"]}
    # Image 5: missing; 6: truncated JPEG; 7: text file named .jpg.
    (image_dir / files[5]).unlink()
    jpeg = (image_dir / files[6]).read_bytes()
    (image_dir / files[6]).write_bytes(jpeg[: len(jpeg) // 2])
    (image_dir / files[7]).write_text("not a picture\n")

    instances, report = load_coco_instances(ann, image_dir)
    assert report.crowd == 1
    assert report.no_keypoints == 1
    assert report.invalid_box == 1
    assert report.other_category == 1
    assert report.unknown_image == 1
    assert report.missing_image == len(per_image[5])
    assert report.corrupt_image == len(per_image[6]) + len(per_image[7])
    assert report.total == len(anns)
    assert report.kept + sum(report.skipped.values()) == report.total
    assert report.kept == len(instances["image_path"])
    assert report.missing_files == [str(image_dir / files[5])]
    assert sorted(report.corrupt_files) == sorted(
        str(image_dir / files[i]) for i in (6, 7)
    )
    text = str(report)
    for phrase in ("crowd", "no keypoints", "missing image", "corrupt image"):
        assert phrase in text
    assert files[5] in text
    # Only existence is checked in "exists" mode (which the training
    # pipeline refuses for that reason).
    _, report = load_coco_instances(ann, image_dir, check_images="exists")
    assert report.corrupt_image == 0 and report.missing_image > 0


def test_keypoints_outside_the_image_are_unlabelled(fake):
    ann, image_dir, data = fake
    kpts = data["annotations"][0]["keypoints"]
    labelled = [i for i in range(17) if kpts[3 * i + 2] > 0]
    kpts[3 * labelled[0]] = 500.0  # x beyond the 64 px image width
    _rewrite(ann, data)
    instances, report = load_coco_instances(ann, image_dir)
    assert report.keypoints_outside_image == 1
    assert instances["visibility"][0, labelled[0]] == 0
    assert "outside" in str(report)


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda d: d.pop("annotations"), "annotations"),
        (lambda d: d.pop("images"), "images"),
        (lambda d: d["images"][0].pop("file_name"), "file_name"),
        (lambda d: d["images"][0].pop("height"), "height"),
        (lambda d: d["annotations"][0].pop("bbox"), "bbox"),
        (lambda d: d["annotations"][0].pop("image_id"), "image_id"),
        (lambda d: d["annotations"][0].pop("keypoints"), "keypoints"),
        (lambda d: d["annotations"][0].update(keypoints=[1, 2]), "keypoints"),
        (lambda d: d["annotations"][0].update(bbox="box"), "bbox"),
    ],
)
def test_malformed_files_name_file_and_key(fake, edit, key):
    ann, image_dir, data = fake
    edit(data)
    _rewrite(ann, data)
    with pytest.raises(ValueError, match=key) as info:
        load_coco_instances(ann, image_dir)
    assert str(ann) in str(info.value)


def test_invalid_json_and_detections(fake, tmp_path):
    ann, image_dir, _ = fake
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    with pytest.raises(ValueError, match="not valid JSON") as info:
        load_coco_instances(bad, image_dir)
    assert str(bad) in str(info.value)
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 5, 5]}]))
    with pytest.raises(ValueError, match="score") as info:
        load_coco_instances(ann, image_dir, mode="eval", det_file=dets)
    assert str(dets) in str(info.value)
    with pytest.raises(ValueError, match="mode"):
        load_coco_instances(ann, image_dir, mode="test")


def test_empty_result_keeps_shapes(fake):
    ann, image_dir, data = fake
    data["annotations"] = []
    _rewrite(ann, data)
    instances, report = load_coco_instances(ann, image_dir)
    assert report.total == report.kept == 0
    assert instances["keypoints"].shape == (0, 17, 2)
    assert instances["center"].shape == (0, 2)
