"""OKS, OKS-NMS, rescoring and PCKh, on hand examples and real samples."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kerapose.eval import COCO_SIGMAS
from kerapose.eval import MPII_JOINT_NAMES
from kerapose.eval import compute_oks
from kerapose.eval import head_size_from_keypoints
from kerapose.eval import oks_nms
from kerapose.eval import pckh
from kerapose.eval import rescore

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
COCO_JSON = DATA / "coco_sample" / "test_coco.json"
MPII_JSON = DATA / "mpii" / "test_mpii.json"


def _load(path: Path):
    if not path.exists():
        pytest.skip(f"shared test data not found: {path}")
    with open(path) as f:
        return json.load(f)


@pytest.fixture
def coco_people():
    """Labelled people of the COCO sample: (image_ids, (N, 17, 3), areas)."""
    anns = [a for a in _load(COCO_JSON)["annotations"] if a["num_keypoints"]]
    kpts = np.array([a["keypoints"] for a in anns], float).reshape(-1, 17, 3)
    ids = np.array([a["image_id"] for a in anns])
    areas = np.array([a["area"] for a in anns])
    return ids, kpts, areas


@pytest.fixture
def mpii():
    """MPII sample: joints (N, 16, 2), visibility (N, 16)."""
    records = _load(MPII_JSON)
    joints = np.array([r["joints"] for r in records], float)
    visible = np.array([r["joints_vis"] for r in records]) > 0
    return joints, visible


# ---------------------------------------------------------------- compute_oks


def test_oks_hand_example():
    # One joint, sigma 0.1: e = 3^2 / (2*0.1)^2 / 100 / 2 = 1.125.
    a = np.array([[10.0, 10.0, 1.0]])
    b = np.array([[[13.0, 10.0, 1.0]], [[10.0, 10.0, 1.0]]])
    oks = compute_oks(a, b, np.array([100.0, 100.0]), np.array([0.1]))
    np.testing.assert_allclose(oks, [np.exp(-1.125), 1.0])


def test_oks_visibility_threshold():
    a = np.array([[0.0, 0.0, 0.9], [5.0, 0.0, 0.1]])
    b = np.array([[[0.0, 0.0, 0.9], [50.0, 0.0, 0.9]]])
    sigmas = np.array([0.1, 0.1])
    # The far joint drags OKS down unless its low score excludes it.
    assert compute_oks(a, b, [100.0], sigmas)[0] < 0.6
    assert compute_oks(a, b, [100.0], sigmas, vis_thr=0.2)[0] == 1.0
    # No joint above the threshold in both: 0, not a division error.
    assert compute_oks(a, b, [100.0], sigmas, vis_thr=0.95)[0] == 0.0


def test_oks_matches_pycocotools_on_real_people(coco_people):
    ids, kpts, areas = coco_people
    rng = np.random.default_rng(1)
    pred = kpts.copy()
    pred[..., :2] += rng.normal(scale=3.0, size=pred[..., :2].shape)
    pred[..., 2] = 1.0

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(COCO_JSON))
        dt = gt.loadRes(
            [
                {
                    "image_id": int(i),
                    "category_id": 1,
                    "keypoints": p.reshape(-1).tolist(),
                    "score": 1.0,
                }
                for i, p in zip(ids, pred)
            ]
        )
        ev = COCOeval(gt, dt, "keypoints")
        img = 197388  # five people: a real 5 x 5 OKS matrix
        ev.params.imgIds = [img]
        ev.evaluate()
    reference = ev.ious[img, 1]
    gt_anns = gt.loadAnns(gt.getAnnIds(imgIds=[img], catIds=[1]))

    # pycocotools: rows = predictions of that image (equal scores keep
    # their order), columns = its GT people; GT-labelled joints only,
    # scaled by the GT area.
    in_image = np.flatnonzero(ids == img)
    assert reference.shape == (len(in_image), len(gt_anns))
    for col, gt_ann in enumerate(gt_anns):
        g = np.array(gt_ann["keypoints"], float).reshape(17, 3)
        ours = compute_oks(
            g,
            pred[in_image],
            np.full(len(in_image), gt_ann["area"]),
            COCO_SIGMAS,
            vis_thr=0.0,
        )
        np.testing.assert_allclose(ours, reference[:, col], rtol=1e-9)


def test_oks_shape_errors():
    with pytest.raises(ValueError, match="kpts_a"):
        compute_oks(np.zeros((3, 3)), np.zeros((2, 4, 3)), [1, 1], np.ones(4))
    with pytest.raises(ValueError, match="area_b"):
        compute_oks(np.zeros((4, 3)), np.zeros((2, 4, 3)), [1], np.ones(4))
    with pytest.raises(ValueError, match="sigmas"):
        compute_oks(np.zeros((4, 3)), np.zeros((2, 4, 3)), [1, 1], np.ones(3))


# -------------------------------------------------------------------- oks_nms


def test_nms_suppresses_duplicates_and_keeps_other_people(coco_people):
    ids, kpts, areas = coco_people
    sel = ids == 197388  # five people in one image
    people, people_areas = kpts[sel], areas[sel]
    n = len(people)
    rng = np.random.default_rng(2)
    near_copies = people.copy()
    near_copies[..., :2] += rng.normal(scale=0.5, size=people[..., :2].shape)
    all_kpts = np.concatenate([people, people, near_copies])
    all_areas = np.tile(people_areas, 3)
    # Originals score highest so they are the ones kept.
    scores = np.concatenate(
        [np.linspace(0.9, 0.8, n), np.full(n, 0.5), np.full(n, 0.4)]
    )
    keep = oks_nms(all_kpts, scores, all_areas, COCO_SIGMAS, threshold=0.9)
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep, np.arange(n))


def test_nms_keeps_far_apart_people():
    base = np.random.default_rng(4).uniform(0, 50, size=(17, 3))
    base[:, 2] = 1.0
    kpts = np.stack([base, base + [500.0, 0.0, 0.0], base + [0.0, 500.0, 0]])
    keep = oks_nms(kpts, [0.3, 0.9, 0.5], [2500.0] * 3, COCO_SIGMAS)
    np.testing.assert_array_equal(keep, [1, 2, 0])


def test_nms_ties_go_highest_index_first():
    # The reference sorts ascending and reads backwards: among equal scores
    # the highest index is kept and the others are suppressed by it.
    base = np.random.default_rng(5).uniform(0, 50, size=(17, 3))
    far = base + [400.0, 0.0, 0.0]
    kpts = np.stack([far, base, base, far, base])
    scores = np.full(5, 0.7)
    keep = oks_nms(kpts, scores, np.full(5, 2500.0), COCO_SIGMAS)
    np.testing.assert_array_equal(keep, [4, 3])
    again = oks_nms(kpts, scores, np.full(5, 2500.0), COCO_SIGMAS)
    np.testing.assert_array_equal(again, keep)


@pytest.mark.parametrize(
    "scores, expected",
    [
        ([0.5, 0.5, 0.0, 0.0], [1, 0, 3, 2]),
        ([0.5, 0.9, 0.5, 0.9, 0.5], [3, 1, 4, 2, 0]),
        ([0.2] * 6, [5, 4, 3, 2, 1, 0]),
        ([0.1, 0.3, 0.2], [1, 2, 0]),
    ],
)
def test_nms_visit_order_with_ties(scores, expected):
    # People far apart: nothing is suppressed, so `keep` is the visit
    # order. numpy's default argsort is not stable (with its AVX-512
    # kernel `np.argsort(s)[::-1]` gives [0, 1, 2, 3] for the first case),
    # so the reference order is spelt out: score descending, then index
    # descending, what the reference's sort gives on small arrays with
    # numpy's classic (insertion-sort) kernel.
    n = len(scores)
    base = np.random.default_rng(6).uniform(0, 50, size=(17, 3))
    kpts = np.stack([base + [300.0 * i, 0.0, 0.0] for i in range(n)])
    keep = oks_nms(kpts, scores, np.full(n, 2500.0), COCO_SIGMAS)
    by_key = sorted(range(n), key=lambda i: (scores[i], i), reverse=True)
    assert keep.tolist() == expected == by_key


def test_nms_area_modes():
    a = np.zeros((1, 3))
    b = np.array([[3.0, 0.0, 1.0]])
    kpts = np.stack([a, b])
    sigmas = np.array([0.1])
    areas = np.array([400.0, 100.0])
    # OKS with the mean area (250) vs the kept instance's area (400).
    oks_mean = np.exp(-9 / 0.04 / 250 / 2)
    oks_ref = np.exp(-9 / 0.04 / 400 / 2)
    thr = (oks_mean + oks_ref) / 2
    assert oks_mean < thr < oks_ref
    mean_keep = oks_nms(kpts, [1.0, 0.5], areas, sigmas, threshold=thr)
    ref_keep = oks_nms(
        kpts, [1.0, 0.5], areas, sigmas, threshold=thr, area_mode="reference"
    )
    np.testing.assert_array_equal(mean_keep, [0, 1])
    np.testing.assert_array_equal(ref_keep, [0])
    with pytest.raises(ValueError, match="area_mode"):
        oks_nms(kpts, [1.0, 0.5], areas, sigmas, area_mode="max")


def test_nms_empty_input():
    keep = oks_nms(np.zeros((0, 17, 3)), np.zeros(0), np.zeros(0), COCO_SIGMAS)
    assert keep.shape == (0,)


# -------------------------------------------------------------------- rescore


def test_rescore_hand_example():
    kp_scores = np.array([[0.9, 0.1, 0.5, 0.2], [0.1, 0.2, 0.0, 0.15]])
    box_scores = np.array([0.8, 0.9])
    # Row 0: 0.9 and 0.5 are above 0.2 (0.2 itself is not): 0.7 * 0.8.
    # Row 1: nothing above the threshold: 0.
    np.testing.assert_allclose(rescore(kp_scores, box_scores), [0.56, 0.0])
    np.testing.assert_allclose(
        rescore(kp_scores, box_scores, threshold=0.0),
        [np.mean([0.9, 0.1, 0.5, 0.2]) * 0.8, np.mean([0.1, 0.2, 0.15]) * 0.9],
    )


def test_rescore_shape_errors():
    with pytest.raises(ValueError, match="box_scores"):
        rescore(np.ones((2, 4)), np.ones(3))
    with pytest.raises(ValueError, match="keypoint_scores"):
        rescore(np.ones(4), np.ones(1))


# ---------------------------------------------------------------------- PCKh


def test_head_size_from_keypoints(mpii):
    joints, _ = mpii
    sizes = head_size_from_keypoints(joints)
    assert sizes.shape == (len(joints),)
    expected = np.linalg.norm(joints[:, 9] - joints[:, 8], axis=-1)
    np.testing.assert_allclose(sizes, expected)
    assert sizes[0] == pytest.approx(157.2829, abs=1e-3)
    with pytest.raises(ValueError, match="head_top_idx"):
        head_size_from_keypoints(joints, head_top_idx=16)


def test_pckh_ground_truth_is_perfect(mpii):
    joints, visible = mpii
    result = pckh(
        joints,
        joints,
        visible,
        head_size_from_keypoints(joints),
        joint_names=MPII_JOINT_NAMES,
    )
    assert result["mean"] == 1.0
    assert list(result["per_joint"]) == list(MPII_JOINT_NAMES)
    assert all(v == 1.0 for v in result["per_joint"].values())
    # Two of the five people have no ankle annotations.
    assert result["visible_count"]["right_ankle"] == 3
    assert result["visible_count"]["head_top"] == 5


def test_pckh_shifted_predictions_score_lower(mpii):
    joints, visible = mpii
    heads = head_size_from_keypoints(joints)
    # A shift within half a head size is still correct; one beyond is not.
    unit = np.array([0.6, 0.8])
    near = joints + 0.4 * heads[:, None, None] * unit
    far = joints + 0.6 * heads[:, None, None] * unit
    assert pckh(near, joints, visible, heads)["mean"] == 1.0
    assert pckh(far, joints, visible, heads)["mean"] == 0.0

    # Only the wrists moved: those two joints fail, the mean drops.
    wrists = joints.copy()
    wrists[:, [10, 15]] += 60.0
    result = pckh(wrists, joints, visible, heads)
    assert 0.0 < result["mean"] < 1.0
    assert result["per_joint"][10] == 0.0
    assert result["per_joint"][0] == 1.0
    assert result["mean"] == pytest.approx(1 - 10 / visible.sum())


def test_pckh_threshold_is_inclusive_and_invisible_joints_ignored():
    gt = np.zeros((1, 3, 2))
    pred = np.array([[[5.0, 0.0], [5.1, 0.0], [100.0, 0.0]]])
    visible = np.array([[True, True, False]])
    result = pckh(pred, gt, visible, np.array([10.0]))
    assert result["per_joint"][0] == 1.0
    assert result["per_joint"][1] == 0.0
    assert np.isnan(result["per_joint"][2])
    assert result["mean"] == 0.5


def test_pckh_exclude_from_mean():
    gt = np.zeros((1, 3, 2))
    pred = np.array([[[0.0, 0.0], [0.0, 0.0], [100.0, 0.0]]])
    visible = np.ones((1, 3), bool)
    result = pckh(pred, gt, visible, [10.0], exclude_from_mean=(2,))
    assert result["mean"] == 1.0
    assert result["per_joint"][2] == 0.0


def test_pckh_input_errors(mpii):
    joints, visible = mpii
    heads = head_size_from_keypoints(joints)
    with pytest.raises(ValueError, match="gt"):
        pckh(joints, joints[:, :15], visible, heads)
    with pytest.raises(ValueError, match="visible"):
        pckh(joints, joints, visible[:, :15], heads)
    with pytest.raises(ValueError, match="head_sizes"):
        pckh(joints, joints, visible, heads[:3])
    with pytest.raises(ValueError, match=r"instances \[1\]"):
        pckh(joints, joints, visible, heads * [1, 0, 1, 1, 1])
