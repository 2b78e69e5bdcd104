"""Readers refuse malformed values with errors that name the record."""

import json

import pytest

from kerapose.data.coco import load_coco_instances
from kerapose.data.mpii import load_mpii_instances
from kerapose.testing.fake_data import write_fake_coco

# NumPy only: independent of the Keras backend.
pytestmark = pytest.mark.tf_only


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake")
    ann = write_fake_coco(root, num_images=4, image_size=(48, 64))
    return ann, root / "images", json.loads(ann.read_text())


def _edited(tmp_path, fake_dir, edit):
    """A copy of the fake file with `edit(data)` applied."""
    ann, image_dir, data = fake_dir
    data = json.loads(json.dumps(data))
    edit(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path, image_dir, data


def _labelled(ann):
    kpts = ann["keypoints"]
    return [i for i in range(len(kpts) // 3) if kpts[3 * i + 2] > 0]


def test_string_keypoints_raise_naming_the_annotation(tmp_path, fake_dir):
    def edit(data):
        a = data["annotations"][1]
        a["keypoints"] = [str(v) for v in a["keypoints"]]
        a["id"] = 4242

    path, image_dir, _ = _edited(tmp_path, fake_dir, edit)
    with pytest.raises(ValueError, match="annotation id 4242") as info:
        load_coco_instances(path, image_dir)
    assert "numbers" in str(info.value) and "str" in str(info.value)


@pytest.mark.parametrize("field", ["bbox", "area"])
def test_string_box_values_raise(tmp_path, fake_dir, field):
    def edit(data):
        a = data["annotations"][0]
        a[field] = [str(v) for v in a["bbox"]] if field == "bbox" else "9"

    path, image_dir, data = _edited(tmp_path, fake_dir, edit)
    with pytest.raises(ValueError, match=field) as info:
        load_coco_instances(path, image_dir)
    assert f"annotation id {data['annotations'][0]['id']}" in str(info.value)


def test_nan_keypoints_raise_naming_the_annotation(tmp_path, fake_dir):
    def edit(data):
        a = data["annotations"][2]
        a["keypoints"][3 * _labelled(a)[0]] = float("nan")

    path, image_dir, data = _edited(tmp_path, fake_dir, edit)
    ann_id = data["annotations"][2]["id"]
    with pytest.raises(ValueError, match=f"annotation id {ann_id}") as info:
        load_coco_instances(path, image_dir)
    assert "NaN" in str(info.value)


def test_nan_at_an_unlabelled_keypoint_is_ignored(tmp_path, fake_dir):
    def edit(data):
        a = data["annotations"][0]
        a["keypoints"][0:3] = [float("nan"), float("nan"), 0]

    path, image_dir, _ = _edited(tmp_path, fake_dir, edit)
    instances, _ = load_coco_instances(path, image_dir)
    assert instances["keypoints"][0, 0].tolist() == [0.0, 0.0]


def test_every_image_missing_raises(tmp_path, fake_dir):
    ann, _, _ = fake_dir
    with pytest.raises(ValueError, match="none of its") as info:
        load_coco_instances(ann, tmp_path / "nowhere")
    message = str(info.value)
    assert "missing" in message and "image_dir" in message
    assert str(tmp_path / "nowhere") in message


def test_every_image_corrupt_raises(tmp_path, fake_dir):
    ann, image_dir, data = fake_dir
    for img in data["images"]:
        (tmp_path / img["file_name"]).write_text("not an image")
    with pytest.raises(ValueError, match="not a readable"):
        load_coco_instances(ann, tmp_path)


def test_some_images_missing_still_loads(tmp_path, fake_dir):
    ann, image_dir, data = fake_dir
    kept = data["images"][0]["file_name"]
    (tmp_path / kept).write_bytes((image_dir / kept).read_bytes())
    instances, report = load_coco_instances(ann, tmp_path)
    assert report.kept > 0 and report.missing_image > 0


def test_detection_with_nan_score_raises(tmp_path, fake_dir):
    ann, image_dir, data = fake_dir
    dets = tmp_path / "dets.json"
    det = {"image_id": data["images"][0]["id"], "bbox": [1, 1, 9, 9]}
    dets.write_text(json.dumps([{**det, "score": float("nan")}]))
    with pytest.raises(ValueError, match=r"\[0\]: 'score'"):
        load_coco_instances(ann, image_dir, mode="eval", det_file=dets)


def _mpii_entry():
    return {
        "image": "a.jpg",
        "center": [50.0, 50.0],
        "scale": 1.0,
        "joints": [[10.0, 10.0]] * 16,
        "joints_vis": [1] * 16,
    }


@pytest.mark.parametrize("key", ["joints", "center", "scale"])
def test_mpii_string_numbers_raise_naming_the_entry(tmp_path, key):
    entry = _mpii_entry()
    if key == "joints":
        entry[key] = [[str(x), str(y)] for x, y in entry[key]]
    elif key == "center":
        entry[key] = ["50", "50"]
    else:
        entry[key] = "1.0"
    path = tmp_path / "mpii.json"
    path.write_text(json.dumps([_mpii_entry(), entry]))
    with pytest.raises(ValueError, match=f"entry 1: '{key}'"):
        load_mpii_instances(path, tmp_path)
