"""CrowdPose AP per crowd level (easy / medium / hard)."""

import json

import numpy as np
import pytest

from kerapose.eval import CROWD_METRIC_NAMES
from kerapose.eval import CROWDPOSE_SIGMAS
from kerapose.eval import METRIC_NAMES
from kerapose.eval import COCOEvaluator
from tests.conftest import shared_path
from tests.eval import tiny_gt


def _evaluate(gt, kpts, image_ids):
    evaluator = COCOEvaluator(gt, sigmas=CROWDPOSE_SIGMAS, use_area=False)
    evaluator.update(image_ids, kpts, np.ones(len(image_ids)))
    return evaluator, evaluator.result()


@pytest.fixture(scope="module")
def three_levels():
    """One person per level: exact (easy), 6 px off, 15 px off (hard)."""
    people = [tiny_gt.person(14, seed=s) for s in range(3)]
    gt = tiny_gt.dataset(people, crowd_index=[0.05, 0.5, 0.9])
    preds = np.stack(
        [
            people[0],
            tiny_gt.shifted(people[1], 6.0),
            tiny_gt.shifted(people[2], 15.0),
        ]
    )
    return gt, preds


def test_each_level_is_the_ap_of_its_images(three_levels):
    gt, preds = three_levels
    _, result = _evaluate(gt, preds, [1, 2, 3])
    assert set(result) == set(METRIC_NAMES) | set(CROWD_METRIC_NAMES)
    alone = []
    for i in range(3):
        one = {
            "images": [{"id": i + 1}],
            "annotations": [gt["annotations"][i]],
            "categories": gt["categories"],
        }
        alone.append(_evaluate(one, preds[i : i + 1], [i + 1])[1]["AP"])
    assert result["AP_easy"] == pytest.approx(alone[0]) == pytest.approx(1.0)
    assert result["AP_medium"] == pytest.approx(alone[1])
    assert result["AP_hard"] == pytest.approx(alone[2])
    assert 1.0 > result["AP_medium"] > result["AP_hard"] + 0.1
    assert result["AP_hard"] < result["AP"] < result["AP_easy"]


def test_level_bounds_follow_the_official_code():
    people = [tiny_gt.person(14, seed=s) for s in range(6)]
    index = [0.1, 0.199, 0.2, 0.799, 0.8, 1.0]
    gt = tiny_gt.dataset(people, crowd_index=index)
    evaluator = COCOEvaluator(gt, sigmas=CROWDPOSE_SIGMAS, use_area=False)
    assert evaluator.crowd_splits == {
        "AP_easy": [1, 2],
        "AP_medium": [3, 4],
        "AP_hard": [5, 6],
    }


def test_empty_level_is_undefined(three_levels):
    gt, preds = three_levels
    for image in gt["images"]:
        image["crowdIndex"] = 0.5
    _, result = _evaluate(gt, preds, [1, 2, 3])
    assert result["AP_easy"] == result["AP_hard"] == -1.0
    assert result["AP_medium"] == pytest.approx(result["AP"])


def test_files_without_crowd_index_have_no_levels(three_levels):
    gt, preds = three_levels
    gt = json.loads(json.dumps(gt))
    del gt["images"][1]["crowdIndex"]
    with pytest.warns(UserWarning, match="1 of 3 images have no 'crowdIndex'"):
        evaluator, result = _evaluate(gt, preds, [1, 2, 3])
    assert evaluator.crowd_splits is None
    assert set(result) == set(METRIC_NAMES)


def test_non_numeric_crowd_index_is_named(three_levels):
    gt = json.loads(json.dumps(three_levels[0]))
    gt["images"][2]["crowdIndex"] = "high"
    with pytest.raises(ValueError, match="image id 3.*'high'"):
        COCOEvaluator(gt, sigmas=CROWDPOSE_SIGMAS, use_area=False)


def test_crowdpose_sample_levels():
    path = shared_path("data", "crowdpose", "test_crowdpose.json")
    gt = json.loads(path.read_text())
    anns = [a for a in gt["annotations"] if a["num_keypoints"] > 0]
    kpts = np.array([a["keypoints"] for a in anns], float).reshape(-1, 14, 3)
    kpts[..., :2] += np.random.default_rng(2).normal(
        scale=4.0, size=kpts[..., :2].shape
    )
    ids = np.array([a["image_id"] for a in anns])
    evaluator, result = _evaluate(path, kpts, ids)
    # Both sample images have crowd index 0.33 / 0.39: medium.
    assert evaluator.crowd_splits["AP_medium"] == [106848, 103319]
    assert 0.0 < result["AP"] < 1.0
    assert result["AP_medium"] == pytest.approx(result["AP"])
    assert result["AP_easy"] == result["AP_hard"] == -1.0
    assert "AP_medium" in evaluator.summary
    evaluator.reset()
    with pytest.warns(UserWarning, match="without predictions"):
        assert evaluator.result()["AP_hard"] == 0.0
