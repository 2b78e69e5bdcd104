"""Single-stage evaluation: keypoint and box AP through pycocotools."""

import json

import numpy as np
import pytest

from kerapose.data.keypoint_specs import spec_for_num_keypoints
from kerapose.eval.single_stage import BOX_METRIC_NAMES
from kerapose.eval.single_stage import evaluate_single_stage
from kerapose.eval.single_stage import score_single_stage_predictions
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def sample():
    folder = shared_path("data", "coco_sample")
    return folder / "test_coco.json", folder


def _perfect(ann_file):
    """Predictions made from the ground truth; people without labelled
    keypoints (boxes only) ranked last, as keypoint AP ignores them."""
    anns = [
        a for a in json.loads(ann_file.read_text())["annotations"]
        if not a.get("iscrowd")
    ]  # fmt: skip
    return {
        "keypoints": np.array(
            [np.reshape(a["keypoints"], (17, 3)) for a in anns], np.float64
        ),
        "boxes": np.array([a["bbox"] for a in anns], np.float64),
        "image_id": np.array([a["image_id"] for a in anns]),
        "score": np.array([0.9 if a["num_keypoints"] else 0.1 for a in anns]),
    }


def test_perfect_predictions_score_one(sample):
    ann_file, _ = sample
    preds = _perfect(ann_file)
    assert np.any(preds["keypoints"][..., 2].sum(-1) == 0)  # box-only people
    metrics = score_single_stage_predictions(
        preds, ann_file, spec_for_num_keypoints(17)
    )
    assert metrics["AP"] == 1.0 and metrics["AR"] == 1.0
    assert metrics["bbox_AP"] == 1.0 and metrics["bbox_AR100"] == 1.0
    assert metrics["num_predictions"] == len(preds["score"])


def test_a_shifted_box_lowers_box_ap_only(sample):
    ann_file, _ = sample
    preds = _perfect(ann_file)
    preds["boxes"][0, :2] += preds["boxes"][0, 2:]  # no overlap left
    metrics = score_single_stage_predictions(
        preds, ann_file, spec_for_num_keypoints(17)
    )
    assert metrics["AP"] == 1.0
    assert metrics["bbox_AP"] < 1.0


def test_bad_predictions_are_refused(sample):
    ann_file, _ = sample
    preds = _perfect(ann_file)
    preds["boxes"] = preds["boxes"][:, :3]
    with pytest.raises(ValueError, match="boxes"):
        score_single_stage_predictions(
            preds, ann_file, spec_for_num_keypoints(17)
        )
    preds = _perfect(ann_file)
    preds["keypoints"][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite|NaN"):
        score_single_stage_predictions(
            preds, ann_file, spec_for_num_keypoints(17)
        )


def test_evaluate_a_tiny_model_end_to_end(sample):
    from kerapose import zoo

    ann_file, image_dir = sample
    model = zoo.load("test_yolo_pose", compile=False)
    metrics = evaluate_single_stage(
        model, ann_file, image_dir, batch_size=4, verbose=0
    )
    for name in ("AP", "AR", *BOX_METRIC_NAMES):
        assert 0.0 <= metrics[name] <= 1.0, name
    # At most 100 people per image, 4 images.
    assert 0 < metrics["num_predictions"] <= 400
