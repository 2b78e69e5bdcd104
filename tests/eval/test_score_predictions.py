"""score_predictions: tie order, use_area, keypoint_field, bad values."""

import types

import numpy as np
import pytest

from kerapose.data.keypoint_specs import COCO_17
from kerapose.data.keypoint_specs import CROWDPOSE_14
from kerapose.data.keypoint_specs import KeypointSpec
from kerapose.eval import COCOEvaluator
from kerapose.eval import compute_oks
from kerapose.eval import resolve_use_area
from kerapose.eval.top_down import score_predictions
from tests.eval import tiny_gt


def _preds(people, image_ids, area):
    kpts = np.stack(people).astype(np.float64)
    kpts[..., 2] = 1.0
    n = len(kpts)
    return {
        "keypoints": kpts,
        "image_id": np.asarray(image_ids),
        "score": np.ones(n),
        "area": np.full(n, float(area)),
    }


def _reference_nms(preds, threshold, highest_index_first):
    """The reference greedy loop with a chosen order among equal scores."""
    scores = preds["keypoints"][..., 2].mean(axis=1) * preds["score"]
    areas = preds["area"]
    sign = 1 if highest_index_first else -1
    order = np.array(
        sorted(range(len(scores)), key=lambda i: (scores[i], sign * i))[::-1]
    )
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        scale = (areas[i] + areas[rest]) / 2.0
        kpts = preds["keypoints"]
        oks = compute_oks(kpts[i], kpts[rest], scale, COCO_17.sigmas)
        order = rest[oks <= threshold]
    return keep, scores


def _ap_of_kept(gt, preds, keep, scores):
    evaluator = COCOEvaluator(gt)
    evaluator.update(
        preds["image_id"][keep], preds["keypoints"][keep], scores[keep]
    )
    return evaluator.result()["AP"]


@pytest.mark.parametrize("nms_threshold", [0.9, 0.5])
def test_equal_scores_follow_the_reference_order(nms_threshold):
    truth = tiny_gt.person(17)
    gt = tiny_gt.dataset([truth], area=10600.0)
    # Row 0 is off by 12 px (OKS about 0.7), row 1 is exact; same score.
    # At 0.9 both are kept and only their order matters; at 0.5 the first
    # one visited suppresses the other.
    preds = _preds([tiny_gt.shifted(truth, 12.0), truth], [1, 1], 10600.0)
    ap = score_predictions(preds, gt, COCO_17, nms_threshold=nms_threshold)
    official = _ap_of_kept(
        gt, preds, *_reference_nms(preds, nms_threshold, True)
    )
    lowest_first = _ap_of_kept(
        gt, preds, *_reference_nms(preds, nms_threshold, False)
    )
    assert ap["AP"] == pytest.approx(official) == pytest.approx(1.0)
    assert lowest_first < official - 0.1
    assert ap["num_predictions"] == (2 if nms_threshold == 0.9 else 1)


# ------------------------------------------------------------------ use_area


@pytest.fixture(scope="module")
def crowd_case():
    """A 14-point person whose `area` is far below 0.53 * w * h."""
    truth = tiny_gt.person(14)
    gt = tiny_gt.dataset([truth], area=4000.0)
    preds = _preds([tiny_gt.shifted(truth, 6.0)], [1], 10000.0)
    return gt, preds


def test_use_area_changes_crowdpose_style_ap(crowd_case):
    gt, preds = crowd_case
    box = score_predictions(preds, gt, CROWDPOSE_14, use_area=False)["AP"]
    area = score_predictions(preds, gt, CROWDPOSE_14, use_area=True)["AP"]
    # 0.53 * w * h is about 2.5 times the area: a larger OKS scale.
    assert box > area + 0.1


def test_use_area_default_follows_the_spec(crowd_case):
    gt, preds = crowd_case
    default = score_predictions(preds, gt, CROWDPOSE_14)["AP"]
    box = score_predictions(preds, gt, CROWDPOSE_14, use_area=False)["AP"]
    area = score_predictions(preds, gt, CROWDPOSE_14, use_area=True)["AP"]
    assert default == box != area
    # A spec without the flag (or with it False) means the COCO protocol.
    plain = types.SimpleNamespace(sigmas=CROWDPOSE_14.sigmas)
    assert score_predictions(preds, gt, plain)["AP"] == area


def test_crowdpose_spec_scores_with_the_box_area():
    assert CROWDPOSE_14.use_area is False
    assert resolve_use_area(None, CROWDPOSE_14) is False
    assert resolve_use_area(None, COCO_17) is True
    assert resolve_use_area(True, CROWDPOSE_14) is True
    assert resolve_use_area(None) is True


def test_bad_use_area_is_named(crowd_case):
    gt, preds = crowd_case
    with pytest.raises(ValueError, match="use_area.*'yes'"):
        score_predictions(preds, gt, CROWDPOSE_14, use_area="yes")


# ------------------------------------------------------------ keypoint_field


def test_keypoint_field_scores_the_second_keypoint_set():
    body = [tiny_gt.person(17, seed=s) for s in (0, 1)]
    full = [tiny_gt.person(21, seed=s + 5) for s in (0, 1)]
    gt = tiny_gt.dataset(body, area=10600.0)
    for ann, kpts in zip(gt["annotations"], full):
        ann["keypoints_21"] = [float(v) for v in kpts.reshape(-1)]
    spec21 = KeypointSpec(
        name="art_21",
        keypoint_names=[f"p{i}" for i in range(21)],
        flip_pairs=(),
        sigmas=[0.05] * 21,
        skeleton=(),
    )
    preds = _preds(full, [1, 2], 10600.0)
    metrics = score_predictions(
        preds, gt, spec21, keypoint_field="keypoints_21"
    )
    assert metrics["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"sigmas must have shape \(17,\)"):
        score_predictions(preds, gt, spec21)


# ---------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    "key, row, field",
    [("keypoints", 2, "keypoints"), ("score", 0, "score"), ("area", 1, "area")],
)
def test_nan_names_the_prediction_and_image(key, row, field):
    people = [tiny_gt.person(17, seed=s) for s in range(3)]
    gt = tiny_gt.dataset(people, area=10600.0)
    preds = _preds(people, [1, 2, 3], 10600.0)
    preds[key][row] = np.nan
    with pytest.raises(
        ValueError, match=rf"prediction {row} \(image id {row + 1}: {field}\)"
    ):
        score_predictions(preds, gt, COCO_17)


def test_mismatched_prediction_lengths_are_named():
    people = [tiny_gt.person(17)]
    preds = _preds(people, [1], 100.0)
    preds["score"] = np.ones(3)
    gt = tiny_gt.dataset(people, area=10600.0)
    with pytest.raises(ValueError, match=r"preds\['score'\] has 3 rows"):
        score_predictions(preds, gt, COCO_17)


def test_spec_without_sigmas_asks_for_them(crowd_case):
    if not hasattr(KeypointSpec, "require_sigmas"):
        pytest.skip("KeypointSpec has no sigma-less specs yet")
    gt, preds = crowd_case
    names = [f"p{i}" for i in range(14)]
    spec = KeypointSpec("from_file", names, (), None, ())
    with pytest.raises(ValueError, match="sigmas"):
        score_predictions(preds, gt, spec)
