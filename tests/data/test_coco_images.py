import json

import numpy as np
import pytest

from kerapose.data.coco_images import load_coco_images
from kerapose.testing.fake_data import write_fake_coco
from tests.conftest import shared_path

# NumPy only: independent of the Keras backend.
pytestmark = pytest.mark.tf_only


def _coco_sample():
    root = shared_path("data", "coco_sample")
    return root / "test_coco.json", root


def test_real_sample_one_row_per_image():
    ann, root = _coco_sample()
    records, report = load_coco_images(ann, root, max_people=8)
    data = json.loads(ann.read_text())
    assert report.images_total == report.images_kept == 4
    assert records["keypoints"].shape == (4, 8, 17, 3)
    assert report.total == len(data["annotations"]) == 14
    assert report.kept == records["valid"].sum() == 14
    for i, image_id in enumerate(records["image_id"]):
        anns = [a for a in data["annotations"] if a["image_id"] == image_id]
        assert records["valid"][i].sum() == len(anns)
        got = {
            int(a): int(n)
            for a, n in zip(
                records["annotation_id"][i], records["num_keypoints"][i]
            )
            if a >= 0
        }
        assert got == {a["id"]: a["num_keypoints"] for a in anns}
        # Zero-keypoint people are persons and regions to ignore.
        zero = sum(a["num_keypoints"] == 0 for a in anns)
        assert len(json.loads(records["ignore_regions"][i])) == zero
        j = int(np.flatnonzero(records["annotation_id"][i] == anns[0]["id"])[0])
        kpts = np.asarray(anns[0]["keypoints"], np.float32).reshape(17, 3)
        labelled = kpts[:, 2] > 0
        np.testing.assert_allclose(
            records["keypoints"][i, j][labelled], kpts[labelled]
        )
        assert (records["keypoints"][i, j][~labelled] == 0).all()


def test_over_max_people_keeps_the_largest_and_counts_the_rest():
    ann, root = _coco_sample()
    records, report = load_coco_images(ann, root, max_people=2)
    assert report.over_max_people == 14 - records["valid"].sum()
    assert report.kept + sum(report.skipped.values()) == report.total
    data = json.loads(ann.read_text())
    i = int(np.argmax(records["image_id"] == 197388))
    areas = sorted(
        (a["area"] for a in data["annotations"] if a["image_id"] == 197388),
        reverse=True,
    )
    np.testing.assert_allclose(records["areas"][i], areas[:2], rtol=1e-6)
    assert "over max people" in str(report)


def test_crowd_boxes_outside_and_missing_images(tmp_path):
    ann = write_fake_coco(tmp_path, num_images=4, image_size=(48, 64))
    data = json.loads(ann.read_text())
    first = data["annotations"][0]
    crowd = dict(first, id=900, iscrowd=1, segmentation={"counts": "x"})
    outside = dict(first, id=901, bbox=[100.0, 100.0, 5.0, 5.0])
    data["annotations"] += [crowd, outside]
    data["images"].append(
        {"id": 77, "file_name": "gone.jpg", "height": 48, "width": 64}
    )
    ann.write_text(json.dumps(data))
    records, report = load_coco_images(ann, tmp_path / "images")
    assert report.crowd == 1 and report.invalid_box == 1
    assert report.images_skipped == {"missing_image": 1}
    assert report.images_kept == 4
    row = int(np.argmax(records["image_id"] == first["image_id"]))
    assert {"counts": "x"} in json.loads(records["ignore_regions"][row])
    assert report.kept + sum(report.skipped.values()) == report.total


def test_keep_empty_false_drops_images_without_people(tmp_path):
    ann = write_fake_coco(tmp_path, num_images=3, image_size=(48, 64))
    data = json.loads(ann.read_text())
    data["annotations"] = [
        a
        for a in data["annotations"]
        if a["image_id"] != data["images"][0]["id"]
    ]
    ann.write_text(json.dumps(data))
    kept, _ = load_coco_images(ann, tmp_path / "images")
    dropped, report = load_coco_images(
        ann, tmp_path / "images", keep_empty=False
    )
    assert len(kept["image_id"]) == 3 and len(dropped["image_id"]) == 2
    assert report.images_skipped == {"no_people": 1}


@pytest.mark.parametrize("bad", [0, 2.5, True])
def test_bad_max_people(bad, tmp_path):
    ann = write_fake_coco(tmp_path, num_images=1, image_size=(48, 64))
    with pytest.raises(ValueError, match="max_people"):
        load_coco_images(ann, tmp_path / "images", max_people=bad)


def test_wrong_image_dir_is_named(tmp_path):
    ann = write_fake_coco(tmp_path, num_images=2, image_size=(48, 64))
    with pytest.raises(ValueError, match="Check image_dir"):
        load_coco_images(ann, tmp_path)
