"""COCOEvaluator on the real COCO / CrowdPose samples in shared/data."""

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kerapose.eval import CROWDPOSE_SIGMAS
from kerapose.eval import METRIC_NAMES
from kerapose.eval import COCOEvaluator

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
COCO_JSON = DATA / "coco_sample" / "test_coco.json"
CROWDPOSE_JSON = DATA / "crowdpose" / "test_crowdpose.json"
MPII_JSON = DATA / "mpii" / "test_mpii.json"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data not found: {path}")
    return path


def _load(path: Path) -> dict:
    with open(_require(path)) as f:
        return json.load(f)


def _gt_as_predictions(dataset: dict, with_empty: bool = False):
    """Ground-truth people as (image_ids, keypoints (N, K, 3), scores)."""
    anns = [
        a
        for a in dataset["annotations"]
        if with_empty or a["num_keypoints"] > 0
    ]
    k = len(anns[0]["keypoints"]) // 3
    kpts = np.array([a["keypoints"] for a in anns], float).reshape(-1, k, 3)
    ids = np.array([a["image_id"] for a in anns])
    return ids, kpts, np.ones(len(anns))


def _pycocotools_ap(ann_file: Path, results: list) -> float:
    """AP from plain pycocotools, the reference for the wrapper."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        dt = gt.loadRes(json.loads(json.dumps(results)))
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


@pytest.fixture
def coco_gt() -> dict:
    return _load(COCO_JSON)


@pytest.fixture
def crowdpose_gt() -> dict:
    return _load(CROWDPOSE_JSON)


# --------------------------------------------------------------- COCO sample


def test_ground_truth_as_predictions_gives_ap_one(coco_gt):
    evaluator = COCOEvaluator(COCO_JSON)
    evaluator.update(*_gt_as_predictions(coco_gt))
    result = evaluator.result()
    assert set(result) == set(METRIC_NAMES)
    assert all(isinstance(v, float) for v in result.values())
    for name in METRIC_NAMES:
        assert result[name] == pytest.approx(1.0), name


def test_zero_keypoint_people_count_as_false_positives(coco_gt):
    ids, kpts, scores = _gt_as_predictions(coco_gt, with_empty=True)
    assert len(ids) == 14
    evaluator = COCOEvaluator(COCO_JSON)
    evaluator.update(ids, kpts, scores)
    result = evaluator.result()
    # Documented in shared/data/README.md.
    assert result["AP"] == pytest.approx(0.894, abs=0.01)
    assert result["AR"] == pytest.approx(1.0)


def test_matches_plain_pycocotools_on_noisy_predictions(coco_gt):
    ids, kpts, _ = _gt_as_predictions(coco_gt)
    rng = np.random.default_rng(7)
    kpts[..., :2] += rng.normal(scale=3.0, size=kpts[..., :2].shape)
    scores = rng.uniform(0.3, 1.0, size=len(ids))
    evaluator = COCOEvaluator(COCO_JSON)
    evaluator.update(ids, kpts, scores)
    ap = evaluator.result()["AP"]
    assert ap == pytest.approx(
        _pycocotools_ap(COCO_JSON, evaluator.coco_results())
    )
    assert 0.0 < ap < 1.0


def test_noise_lowers_ap_monotonically(coco_gt):
    ids, kpts, scores = _gt_as_predictions(coco_gt)
    # One fixed direction per joint, scaled: OKS can only fall as it grows.
    direction = np.random.default_rng(0).standard_normal(kpts[..., :2].shape)
    evaluator = COCOEvaluator(COCO_JSON)
    aps = []
    for pixels in (0.0, 2.0, 4.0, 8.0):
        noisy = kpts.copy()
        noisy[..., :2] += pixels * direction
        evaluator.reset()
        evaluator.update(ids, noisy, scores)
        aps.append(evaluator.result()["AP"])
    assert aps[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(aps, aps[1:])), aps


def test_all_zero_keypoint_scores_are_kept(coco_gt):
    ids, kpts, scores = _gt_as_predictions(coco_gt)
    kpts[..., 2] = 0.0
    evaluator = COCOEvaluator(COCO_JSON)
    evaluator.update(ids, kpts, scores)
    assert evaluator.num_predictions == len(ids)
    assert evaluator.result()["AP"] == pytest.approx(1.0)


def test_tie_order_does_not_depend_on_feeding_order(coco_gt, tmp_path):
    ids, kpts, _ = _gt_as_predictions(coco_gt)
    rng = np.random.default_rng(3)
    noisy = kpts.copy()
    noisy[..., :2] += rng.normal(scale=4.0, size=noisy[..., :2].shape)
    # Every prediction twice (exact and noisy), all with the same score:
    # the evaluation order is decided by the tie-break alone.
    all_ids = np.concatenate([ids, ids])
    all_kpts = np.concatenate([kpts, noisy])
    all_scores = np.ones(len(all_ids))

    first = COCOEvaluator(COCO_JSON)
    for img in sorted(set(ids.tolist()), reverse=True):
        sel = all_ids == img
        first.update(all_ids[sel], all_kpts[sel], all_scores[sel])

    # Images interleaved at random and split into other batches; each
    # image's own predictions stay in the same relative order.
    queues = {
        img: list(np.flatnonzero(all_ids == img)) for img in set(ids.tolist())
    }
    draw = rng.permutation(all_ids)
    interleaved = np.array([queues[int(img)].pop(0) for img in draw])
    second = COCOEvaluator(COCO_JSON)
    for batch in np.array_split(interleaved, 5):
        second.update(all_ids[batch], all_kpts[batch], all_scores[batch])

    assert first.coco_results() == second.coco_results()
    assert first.result() == second.result()
    path_a = first.write_results_json(tmp_path / "a.json")
    path_b = second.write_results_json(tmp_path / "b.json")
    assert path_a.read_bytes() == path_b.read_bytes()


def test_ties_follow_pycocotools_on_the_same_results_list(coco_gt):
    ids, kpts, scores = _gt_as_predictions(coco_gt, with_empty=True)
    evaluator = COCOEvaluator(COCO_JSON)
    evaluator.update(ids, kpts, scores)
    expected = _pycocotools_ap(COCO_JSON, evaluator.coco_results())
    assert evaluator.result()["AP"] == pytest.approx(expected)


def test_unknown_image_id_is_named(coco_gt):
    ids, kpts, scores = _gt_as_predictions(coco_gt)
    ids[3] = 123456789
    evaluator = COCOEvaluator(COCO_JSON)
    with pytest.raises(ValueError, match="123456789"):
        evaluator.update(ids, kpts, scores)
    assert evaluator.num_predictions == 0


def test_float_image_ids_are_accepted(coco_gt):
    ids, kpts, scores = _gt_as_predictions(coco_gt)
    evaluator = COCOEvaluator(COCO_JSON)
    evaluator.update(ids.astype(np.float64), kpts, scores)
    assert {r["image_id"] for r in evaluator.coco_results()} == set(
        ids.tolist()
    )
    assert evaluator.result()["AP"] == pytest.approx(1.0)


def test_wrong_shapes_raise(coco_gt):
    ids, kpts, scores = _gt_as_predictions(coco_gt)
    evaluator = COCOEvaluator(COCO_JSON)
    with pytest.raises(ValueError, match=r"\(N, 17, 3\)"):
        evaluator.update(ids, kpts[:, :14], scores)
    with pytest.raises(ValueError, match="scores"):
        evaluator.update(ids, kpts, scores[:-1])
    with pytest.raises(ValueError, match="image_ids"):
        evaluator.update(ids[:-1], kpts, scores)
    with pytest.raises(ValueError, match="areas"):
        evaluator.update(ids, kpts, scores, areas=np.ones(2))
    bad = kpts.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluator.update(ids, bad, scores)


def test_empty_predictions_warn_and_return_zeros():
    evaluator = COCOEvaluator(_require(COCO_JSON))
    with pytest.warns(UserWarning, match="without predictions"):
        result = evaluator.result()
    assert result == {name: 0.0 for name in METRIC_NAMES}


def test_reset_drops_predictions(coco_gt):
    evaluator = COCOEvaluator(COCO_JSON)
    evaluator.update(*_gt_as_predictions(coco_gt))
    evaluator.reset()
    assert evaluator.num_predictions == 0
    assert evaluator.coco_results() == []


def test_areas_only_touch_the_area_breakdowns(coco_gt):
    ids, kpts, scores = _gt_as_predictions(coco_gt, with_empty=True)
    plain = COCOEvaluator(COCO_JSON)
    plain.update(ids, kpts, scores)
    with_areas = COCOEvaluator(COCO_JSON)
    with_areas.update(ids, kpts, scores, areas=np.full(len(ids), 50.0**2))
    a, b = plain.result(), with_areas.result()
    for name in ("AP", "AP50", "AP75", "AR", "AR50", "AR75"):
        assert a[name] == pytest.approx(b[name]), name
    # The two unmatched empty people now fall in the medium range.
    assert b["APM"] < a["APM"]


def test_write_results_json_is_coco_results_format(coco_gt, tmp_path):
    ids, kpts, scores = _gt_as_predictions(coco_gt)
    evaluator = COCOEvaluator(COCO_JSON)
    evaluator.update(ids, kpts, scores * 0.5)
    path = evaluator.write_results_json(tmp_path / "results.json")
    with open(path) as f:
        results = json.load(f)
    assert len(results) == len(ids)
    for res in results:
        assert set(res) == {"image_id", "category_id", "keypoints", "score"}
        assert res["category_id"] == 1
        assert len(res["keypoints"]) == 17 * 3
        assert res["score"] == pytest.approx(0.5)
    assert _pycocotools_ap(COCO_JSON, results) == pytest.approx(1.0)


def test_verbose_controls_pycocotools_output(coco_gt, capsys):
    quiet = COCOEvaluator(COCO_JSON)
    quiet.update(*_gt_as_predictions(coco_gt))
    quiet.result()
    assert capsys.readouterr().out == ""
    assert "Average Precision" in quiet.summary

    loud = COCOEvaluator(COCO_JSON, verbose=True)
    loud.update(*_gt_as_predictions(coco_gt))
    loud.result()
    assert "Average Precision" in capsys.readouterr().out


def test_iou_type_other_than_keypoints_is_rejected():
    with pytest.raises(ValueError, match="iou_type"):
        COCOEvaluator(_require(COCO_JSON), iou_type="bbox")


# ---------------------------------------------------------- malformed input


def test_not_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        COCOEvaluator(path)


@pytest.mark.parametrize("key", ["annotations", "images"])
def test_missing_key_names_file_and_key(coco_gt, tmp_path, key):
    del coco_gt[key]
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(coco_gt))
    with pytest.raises(ValueError, match=f"partial.json.*'{key}'"):
        COCOEvaluator(path)


def test_list_format_file_is_rejected():
    with pytest.raises(ValueError, match="test_mpii.json.*list"):
        COCOEvaluator(_require(MPII_JSON))


def test_wrong_keypoint_count_in_ground_truth(coco_gt):
    coco_gt["annotations"][0]["keypoints"] = [0, 0, 0] * 5
    with pytest.raises(ValueError, match="442619"):
        COCOEvaluator(coco_gt)


# ------------------------------------------------------------------ CrowdPose


def test_crowdpose_ground_truth_gives_ap_one(crowdpose_gt):
    with pytest.warns(UserWarning, match="5 had no 'area'"):
        evaluator = COCOEvaluator(CROWDPOSE_JSON, sigmas=CROWDPOSE_SIGMAS)
    assert evaluator.num_keypoints == 14
    assert evaluator.fill_report["area_from_bbox"] == 5
    evaluator.update(*_gt_as_predictions(crowdpose_gt))
    result = evaluator.result()
    assert result["AP"] == pytest.approx(1.0)
    assert result["AR"] == pytest.approx(1.0)
    # No medium-sized person in the sample: pycocotools' "undefined".
    assert result["APM"] == -1.0


def test_crowdpose_use_area_false_needs_no_filling(crowdpose_gt):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluator = COCOEvaluator(
            CROWDPOSE_JSON, sigmas=CROWDPOSE_SIGMAS, use_area=False
        )
    assert sum(evaluator.fill_report.values()) == 0
    evaluator.update(*_gt_as_predictions(crowdpose_gt))
    assert evaluator.result()["AP"] == pytest.approx(1.0)


def test_crowdpose_without_sigmas_is_a_clear_error():
    with pytest.raises(ValueError, match="14 keypoints.*sigmas"):
        COCOEvaluator(_require(CROWDPOSE_JSON))


def test_sigmas_of_the_wrong_length_are_rejected():
    with pytest.raises(ValueError, match=r"\(14,\)"):
        COCOEvaluator(_require(CROWDPOSE_JSON), sigmas=np.ones(17) * 0.1)


def test_filling_happens_on_a_copy(crowdpose_gt):
    with pytest.warns(UserWarning):
        COCOEvaluator(crowdpose_gt, sigmas=CROWDPOSE_SIGMAS)
    assert all("area" not in a for a in crowdpose_gt["annotations"])
    assert all("area" not in a for a in _load(CROWDPOSE_JSON)["annotations"])


def test_area_from_keypoints_when_there_is_no_box(coco_gt):
    ann = coco_gt["annotations"][0]
    del ann["area"], ann["bbox"]
    with pytest.warns(UserWarning, match="1 with the keypoint extent"):
        evaluator = COCOEvaluator(coco_gt)
    assert evaluator.fill_report["area_from_keypoints"] == 1
    assert evaluator.fill_report["bbox"] == 1
    evaluator.update(*_gt_as_predictions(coco_gt))
    assert evaluator.result()["AP"] == pytest.approx(1.0)


# ------------------------------------------------ keypoint_field / from_spec


def _with_second_set(coco_gt: dict, k: int = 21) -> tuple[dict, np.ndarray]:
    """Adds a `keypoints_21` field, labelled even where COCO's is empty."""
    rng = np.random.default_rng(11)
    extra = []
    for ann in coco_gt["annotations"]:
        x, y, w, h = ann["bbox"]
        kpts = np.ones((k, 3)) * 2.0
        kpts[:, 0] = x + rng.uniform(0.1, 0.9, k) * w
        kpts[:, 1] = y + rng.uniform(0.1, 0.9, k) * h
        ann["keypoints_21"] = [float(v) for v in kpts.reshape(-1)]
        extra.append(kpts)
    return coco_gt, np.stack(extra)


def test_keypoint_field_reads_the_second_keypoint_set(coco_gt):
    gt, kpts21 = _with_second_set(coco_gt)
    evaluator = COCOEvaluator(
        gt, sigmas=np.full(21, 0.05), keypoint_field="keypoints_21"
    )
    assert evaluator.num_keypoints == 21
    ids = np.array([a["image_id"] for a in gt["annotations"]])
    evaluator.update(ids, kpts21, np.ones(len(ids)))
    # The two people without COCO keypoints are labelled in the second
    # set: they count (with the stored 17-point count they would be
    # ignored and their predictions would be false positives).
    assert evaluator.result()["AP"] == pytest.approx(1.0)
    # The caller's dict keeps its 17-point `keypoints`.
    assert all(len(a["keypoints"]) == 51 for a in gt["annotations"])
    assert evaluator.fill_report["num_keypoints"] == 0


def test_missing_keypoint_field_names_annotation_and_field(coco_gt):
    gt, _ = _with_second_set(coco_gt)
    del gt["annotations"][3]["keypoints_21"]
    ann_id = gt["annotations"][3]["id"]
    with pytest.raises(ValueError, match=f"{ann_id}.*'keypoints_21'"):
        COCOEvaluator(
            gt, sigmas=np.full(21, 0.05), keypoint_field="keypoints_21"
        )


def test_from_spec_takes_sigmas_and_use_area():
    from kerapose.data.keypoint_specs import CROWDPOSE_14

    evaluator = COCOEvaluator.from_spec(_require(CROWDPOSE_JSON), CROWDPOSE_14)
    np.testing.assert_allclose(evaluator.sigmas, CROWDPOSE_SIGMAS)
    assert evaluator.use_area is False
    forced = COCOEvaluator.from_spec(CROWDPOSE_JSON, CROWDPOSE_14, True)
    assert forced.use_area is True


# ------------------------------------------------------------------ NaN rows


def test_nan_names_the_prediction_and_its_image(coco_gt):
    ids, kpts, scores = _gt_as_predictions(coco_gt)
    evaluator = COCOEvaluator(COCO_JSON)
    evaluator.update(ids[:2], kpts[:2], scores[:2])
    bad_kpts, bad_scores = kpts[2:].copy(), scores[2:].copy()
    bad_kpts[3, 5, 1] = np.nan
    bad_scores[7] = np.inf
    with pytest.raises(ValueError) as info:
        evaluator.update(ids[2:], bad_kpts, bad_scores)
    text = str(info.value)
    # Rows count from the last reset: 2 already accumulated.
    assert f"prediction 5 (image id {ids[5]}: keypoints)" in text
    assert f"prediction 9 (image id {ids[9]}: scores)" in text
    assert "2 prediction(s)" in text
    assert evaluator.num_predictions == 2
