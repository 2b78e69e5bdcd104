"""PoseTracker: identities across frames by OKS or IoU (NumPy only)."""

import numpy as np
import pytest

from kerapose.data.keypoint_specs import COCO_17
from kerapose.inference import PoseResult
from kerapose.inference import PoseTracker
from kerapose.inference.tracking import box_iou

# Two COCO-17 poses in a 100 x 200 frame of their own: standing with the
# arms down, and crouching with the arms up (different limb layout).
_STANDING = np.array(
    [
        [50, 20], [45, 15], [55, 15], [40, 18], [60, 18],
        [30, 50], [70, 50], [25, 85], [75, 85], [22, 115], [78, 115],
        [38, 120], [62, 120], [38, 160], [62, 160], [38, 195], [62, 195],
    ],
    np.float64,
)  # fmt: skip
_ARMS_UP = np.array(
    [
        [50, 60], [45, 55], [55, 55], [40, 58], [60, 58],
        [25, 85], [75, 85], [10, 50], [90, 50], [5, 10], [95, 10],
        [35, 140], [65, 140], [15, 170], [85, 170], [30, 198], [70, 198],
    ],
    np.float64,
)  # fmt: skip


def _person(pose, dx=0.0, dy=0.0):
    return pose + [dx, dy]


def _result(people, scores=None):
    """A PoseResult of (K, 2) poses; boxes are their keypoint extents."""
    if not people:
        return PoseResult(
            np.zeros((0, 17, 2), np.float32),
            np.zeros((0, 17), np.float32),
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            (480, 640),
            COCO_17.skeleton,
        )
    kpts = np.stack(people).astype(np.float32)
    lo, hi = kpts.min(axis=1), kpts.max(axis=1)
    boxes = np.concatenate([lo, hi - lo], axis=1)
    if scores is None:
        scores = np.ones(kpts.shape[:2], np.float32)
    return PoseResult(
        kpts,
        scores,
        boxes,
        np.ones(len(kpts), np.float32),
        (480, 640),
        COCO_17.skeleton,
    )


@pytest.mark.parametrize("match", ["oks", "iou"])
def test_ids_follow_people_that_move_and_swap_order(match):
    tracker = PoseTracker(match=match)
    a0, b0 = _person(_STANDING, 100, 50), _person(_STANDING, 400, 60)
    first = tracker.update(_result([a0, b0]))
    np.testing.assert_array_equal(first.track_ids, [0, 1])
    assert first.track_ids.dtype == np.int64
    # Moved a few pixels and listed in the other order.
    second = tracker.update(_result([_person(b0, -6, 3), _person(a0, 5, -4)]))
    np.testing.assert_array_equal(second.track_ids, [1, 0])
    third = tracker.update(_result([_person(a0, 9, -7)]))
    np.testing.assert_array_equal(third.track_ids, [0])
    # The input is not modified; the output keeps every other field.
    assert first.keypoints is not None and tracker.num_tracks == 2
    np.testing.assert_array_equal(third.keypoints, [_person(a0, 9, -7)])


def test_a_new_person_gets_a_new_id():
    tracker = PoseTracker()
    tracker.update(_result([_person(_STANDING, 100, 50)]))
    out = tracker.update(
        _result([_person(_STANDING, 102, 50), _person(_STANDING, 450, 50)])
    )
    np.testing.assert_array_equal(out.track_ids, [0, 1])


@pytest.mark.parametrize("absent, same_id", [(2, True), (3, False)])
def test_person_back_after_max_age_gets_a_new_id(absent, same_id):
    tracker = PoseTracker(max_age=2)
    a, b = _person(_STANDING, 100, 50), _person(_STANDING, 400, 50)
    assert tracker.update(_result([a, b])).track_ids.tolist() == [0, 1]
    for _ in range(absent):
        assert tracker.update(_result([b])).track_ids.tolist() == [1]
    assert tracker.num_tracks == (2 if same_id else 1)
    back = tracker.update(_result([b, a])).track_ids.tolist()
    assert back == ([1, 0] if same_id else [1, 2])


def test_crossing_people_keep_their_ids_under_oks():
    tracker = PoseTracker(match="oks")
    ids = {}
    boxes_met = False
    for step in range(9):
        # A walks right and B left; they stand on the same spot at step 4.
        a = _person(_STANDING, 200 + 20 * step, 100)
        b = _person(_ARMS_UP, 360 - 20 * step, 100)
        order = [b, a] if step % 2 else [a, b]
        out = tracker.update(_result(order))
        if step == 4:
            boxes_met = box_iou(out.boxes[:1], out.boxes[1:])[0, 0] > 0.5
        got = dict(zip(("b", "a") if step % 2 else ("a", "b"), out.track_ids))
        for name, track_id in got.items():
            assert ids.setdefault(name, track_id) == track_id, (step, name)
    assert boxes_met  # the boxes overlap: the poses alone tell them apart
    assert ids == {"a": 0, "b": 1}


def test_empty_frames():
    tracker = PoseTracker(max_age=1)
    empty = tracker.update(_result([]))
    assert empty.track_ids.shape == (0,)
    assert empty.track_ids.dtype == np.int64
    assert empty.to_coco(1) == []
    a = _person(_STANDING, 100, 50)
    assert tracker.update(_result([a])).track_ids.tolist() == [0]
    assert tracker.update(_result([])).track_ids.tolist() == []
    assert tracker.update(_result([a])).track_ids.tolist() == [0]
    tracker.update(_result([]))
    tracker.update(_result([]))
    assert tracker.num_tracks == 0
    assert tracker.update(_result([a])).track_ids.tolist() == [1]


def test_reset_forgets_tracks_but_never_reuses_ids():
    tracker = PoseTracker()
    a = _person(_STANDING, 100, 50)
    tracker.update(_result([a]))
    tracker.reset()
    assert tracker.num_tracks == 0
    assert tracker.update(_result([a])).track_ids.tolist() == [1]


def test_far_moves_do_not_match_below_the_threshold():
    # 60 px is far beyond the OKS falloff of a 200 px tall person.
    tracker = PoseTracker(match="oks", threshold=0.3)
    tracker.update(_result([_person(_STANDING, 100, 50)]))
    out = tracker.update(_result([_person(_STANDING, 160, 50)]))
    assert out.track_ids.tolist() == [1]


def test_box_iou_by_hand():
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 10, 10], [20, 20, 5, 5]])
    np.testing.assert_allclose(iou, [[50 / 150, 0.0]])
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert box_iou([[0, 0, 0, 0]], [[0, 0, 0, 0]]).tolist() == [[0.0]]


def test_custom_sigmas_and_spec_name():
    a = _person(_STANDING, 100, 50)[:5]
    result = PoseResult(
        a[None].astype(np.float32),
        np.ones((1, 5), np.float32),
        np.array([[100, 50, 40, 40]], np.float32),
        np.ones(1, np.float32),
        (480, 640),
    )
    # No built-in spec has 5 keypoints: OKS needs the sigmas.
    with pytest.raises(ValueError, match="sigmas"):
        PoseTracker().update(result)
    tracker = PoseTracker(sigmas=[0.05] * 5)
    tracker.update(result)
    assert tracker.update(result).track_ids.tolist() == [0]
    assert PoseTracker(sigmas="crowdpose_14")._sigmas.shape == (14,)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="`match`.*'bbox'"):
        PoseTracker(match="bbox")
    with pytest.raises(ValueError, match="`threshold`"):
        PoseTracker(threshold=1.5)
    with pytest.raises(ValueError, match="`max_age`"):
        PoseTracker(max_age=-1)
    with pytest.raises(ValueError, match="`max_age`"):
        PoseTracker(max_age=1.5)
    with pytest.raises(ValueError, match="`sigmas`"):
        PoseTracker(sigmas=[0.1, -0.2])
    with pytest.raises(ValueError, match="`sigmas` has 3 entries"):
        PoseTracker(sigmas=[0.1] * 3).update(_result([_STANDING]))
    tracker = PoseTracker()
    tracker.update(_result([_STANDING]))
    with pytest.raises(ValueError, match="17 keypoints but this frame has 5"):
        tracker.update(_result([_STANDING[:5]]))
    bad = _result([_STANDING])
    bad.boxes = bad.boxes[:, :3]
    with pytest.raises(ValueError, match="`result.boxes`"):
        PoseTracker().update(bad)


def test_to_coco_and_plot_carry_track_ids():
    result = _result([_person(_STANDING, 100, 50)])
    assert "track_id" not in result.to_coco(3)[0]
    tracked = PoseTracker().update(result)
    tracked.track_ids = np.array([7])
    assert tracked.to_coco(3)[0]["track_id"] == 7
    assert isinstance(tracked.to_coco(3)[0]["track_id"], int)
    image = np.zeros((480, 640, 3), np.uint8)
    plain, labelled = result.plot(image), tracked.plot(image)
    assert np.any(plain != labelled)  # the id was written
    assert np.all(plain[300:] == labelled[300:])  # near the box corner only
