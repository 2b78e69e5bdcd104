"""YOLOPoseDecoder: exact greedy NMS, keypoints carried, padding, config."""

import keras
import numpy as np
import pytest

from kerapose.codecs import YOLOPoseDecoder
from kerapose.models.yolo_pose.yolo_pose_estimator import STRIDES
from kerapose.models.yolo_pose.yolo_pose_estimator import YOLO_POSE_ANCHORS

K = 17
SCORE, IOU, D = 0.3, 0.5, 40


def numpy_greedy_nms(boxes, scores, score_threshold, iou_threshold):
    """Plain greedy NMS: indices kept, best first."""
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] > score_threshold]
    kept = []
    for i in order:
        overlap = False
        for j in kept:
            lt = np.maximum(boxes[i, :2], boxes[j, :2])
            rb = np.minimum(boxes[i, 2:], boxes[j, 2:])
            inter = np.prod(np.clip(rb - lt, 0, None))
            area = lambda b: np.prod(b[2:] - b[:2])  # noqa: E731
            if (
                inter / (area(boxes[i]) + area(boxes[j]) - inter)
                > iou_threshold
            ):
                overlap = True
                break
        if not overlap:
            kept.append(i)
    return kept


def _run(fn, *args):
    """fn(*args) as NumPy; jitted on JAX, where eager ops compile one by
    one (the eager path is held equal in `test_jit_matches_eager`)."""
    if keras.backend.backend() == "jax":
        import jax

        fn = jax.jit(fn)
    return {k: keras.ops.convert_to_numpy(v) for k, v in fn(*args).items()}


def _rows(rng, centres, sizes, scores):
    """Decoded rows (R, F): box, obj, cls = 1, K random keypoints."""
    n = len(centres)
    keypoints = rng.uniform(0, 300, (n, K, 3)).astype(np.float32)
    keypoints[..., 2] = rng.uniform(0, 1, (n, K))
    return np.concatenate(
        [centres, sizes, scores[:, None], np.ones((n, 1)),
         keypoints.reshape(n, -1)],
        axis=1,
    ).astype(np.float32)  # fmt: skip


def _batch(rng, r=300):
    # 0: scattered boxes (more survivors than D); 1: tight clusters; 2:
    # nothing above the threshold; 3: a chain where each box overlaps only
    # its neighbours (IoU 0.54; 0.25 two apart): greedy keeps every other
    # one, a one-pass "fast NMS" only the first.
    scattered = _rows(
        rng,
        rng.uniform(0, 300, (r, 2)),
        rng.uniform(5, 60, (r, 2)),
        rng.uniform(0, 1, r),
    )
    clusters = _rows(
        rng,
        rng.uniform(50, 250, (6, 2)).repeat(r // 6, 0)
        + rng.normal(0, 8, (r, 2)),
        rng.uniform(40, 80, (r, 2)),
        rng.uniform(0, 1, r),
    )
    empty = _rows(
        rng,
        rng.uniform(0, 300, (r, 2)),
        rng.uniform(5, 60, (r, 2)),
        rng.uniform(0, SCORE, r),
    )
    x = np.arange(r, dtype=np.float32) * 3.0
    chain = _rows(
        rng,
        np.stack([x, np.full(r, 50.0)], 1),
        np.full((r, 2), 10.0),
        np.linspace(0.99, 0.31, r),
    )
    return np.stack([scattered, clusters, empty, chain])


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    rows = _batch(rng)
    decoder = YOLOPoseDecoder(
        YOLO_POSE_ANCHORS,
        STRIDES,
        score_threshold=SCORE,
        iou_threshold=IOU,
        max_detections=D,
    )
    out = {
        k: keras.ops.convert_to_numpy(v) for k, v in decoder.nms(rows).items()
    }
    return decoder, rows, out


def _xyxy(rows):
    return np.concatenate(
        [rows[:, :2] - rows[:, 2:4] / 2, rows[:, :2] + rows[:, 2:4] / 2], 1
    )


def test_nms_equals_numpy_greedy_and_carries_keypoints(case):
    _, rows, out = case
    for b in range(len(rows)):
        boxes = _xyxy(rows[b])
        kept = numpy_greedy_nms(boxes, rows[b, :, 4], SCORE, IOU)[:D]
        n = int(out["num_detections"][b])
        assert n == len(kept), b
        np.testing.assert_allclose(out["boxes"][b, :n], boxes[kept], atol=1e-4)
        np.testing.assert_allclose(out["scores"][b, :n], rows[b, kept, 4])
        kpts = rows[b, kept, 6:].reshape(n, K, 3)
        np.testing.assert_array_equal(out["keypoints"][b, :n], kpts[..., :2])
        np.testing.assert_array_equal(
            out["keypoint_scores"][b, :n], kpts[..., 2]
        )
        # Padding rows are zeros.
        for name in ("boxes", "scores", "keypoints", "keypoint_scores"):
            assert not np.any(out[name][b, n:])


def test_cases_cover_truncation_and_exactness(case):
    _, rows, out = case
    n = out["num_detections"]
    assert n[0] == D  # more survivors than D: the best D, in order
    assert n[2] == 0  # nothing above the threshold
    # The chain: every other box, x = 0, 6, 12, ...
    assert n[3] == D
    np.testing.assert_allclose(out["boxes"][3, :D, 0] + 5, np.arange(D) * 6)
    assert np.all(np.diff(out["scores"][0, : n[0]]) <= 0)


def test_chain_of_overlaps_is_greedy_not_fast_nms():
    # Boxes 0-1 and 1-2 overlap above the threshold, 0-2 not: greedy keeps
    # 0 and 2 (1 is removed by 0, so it removes nothing).
    rng = np.random.default_rng(1)
    rows = _rows(
        rng,
        np.array([[50, 50], [54, 50], [58, 50]], np.float32),
        np.full((3, 2), 10.0),
        np.array([0.9, 0.8, 0.7]),
    )
    decoder = YOLOPoseDecoder(
        YOLO_POSE_ANCHORS, STRIDES, score_threshold=0.1, iou_threshold=0.4
    )
    out = _run(decoder.nms, rows[None])
    np.testing.assert_allclose(out["scores"][0, :3], [0.9, 0.7, 0.0])
    assert int(out["num_detections"][0]) == 2


def test_empty_input_gives_no_detections_and_no_nan():
    decoder = YOLOPoseDecoder(YOLO_POSE_ANCHORS, STRIDES, max_detections=5)
    rows = np.zeros((2, 20, 6 + 3 * K), np.float32)  # zero-size boxes too
    out = _run(decoder.nms, rows)
    assert out["num_detections"].tolist() == [0, 0]
    assert out["boxes"].shape == (2, 5, 4)
    assert out["keypoints"].shape == (2, 5, K, 2)
    for v in out.values():
        assert np.all(np.isfinite(v)) and not np.any(v)


def _raw_levels(batch=1, hot=None):
    """Raw levels of a 64 x 128 (H x W) input, all logits very negative
    except `hot` = (level, y, x, anchor, field values)."""
    levels = [
        np.full((batch, 64 // s, 128 // s, 3, 6 + 3 * K), -10.0, np.float32)
        for s in STRIDES
    ]
    if hot is not None:
        level, y, x, a, fields = hot
        levels[level][0, y, x, a] = fields
    return levels


def test_call_decodes_a_known_anchor():
    # P4 (stride 16), row 2, column 5, anchor 1 (86 x 152): logits 0 put
    # the centre at (5 + 0.5) * 16, (2 + 0.5) * 16 and the size at the
    # anchor; keypoint logits (t_x, t_y) land at (2t - 0.5 + grid) * 16.
    fields = np.zeros(6 + 3 * K, np.float32)
    fields[4:6] = 8.0  # obj, cls
    fields[6:9] = (1.0, -0.5, 0.0)  # keypoint 0: t_x, t_y, conf logit
    decoder = YOLOPoseDecoder(YOLO_POSE_ANCHORS, STRIDES, max_detections=3)
    out = _run(decoder, _raw_levels(hot=(1, 2, 5, 1, fields)))
    assert out["num_detections"].tolist() == [1]
    cx, cy = 5.5 * 16, 2.5 * 16
    np.testing.assert_allclose(
        out["boxes"][0, 0], [cx - 43, cy - 76, cx + 43, cy + 76], atol=1e-3
    )
    np.testing.assert_allclose(
        out["keypoints"][0, 0, 0], [(2 - 0.5 + 5) * 16, (-1 - 0.5 + 2) * 16]
    )
    np.testing.assert_allclose(out["keypoint_scores"][0, 0, 0], 0.5)
    sig = 1 / (1 + np.exp(-8.0))
    np.testing.assert_allclose(out["scores"][0, 0], sig * sig, rtol=1e-5)


def test_jit_matches_eager(case):
    decoder, rows, out = case
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        fn = jax.jit(decoder.nms)
    elif backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(decoder.nms)
    else:
        fn = decoder.nms  # torch runs it eagerly
    compiled = {k: keras.ops.convert_to_numpy(v) for k, v in fn(rows).items()}
    for name, value in out.items():
        np.testing.assert_array_equal(compiled[name], value)


def test_config_round_trip_and_registration():
    decoder = YOLOPoseDecoder(
        YOLO_POSE_ANCHORS, STRIDES, num_keypoints=14, iou_threshold=0.45
    )
    restored = YOLOPoseDecoder.from_config(decoder.get_config())
    assert restored.get_config() == decoder.get_config()
    # The name saved models refer to it by.
    name = keras.saving.get_registered_name(YOLOPoseDecoder)
    assert keras.saving.get_registered_object(name) is YOLOPoseDecoder


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"anchors": YOLO_POSE_ANCHORS[:3]}, "one list"),
        ({"score_threshold": 1.5}, r"\[0, 1\]"),
        ({"max_detections": 10, "pre_nms_top_k": 5}, "pre_nms_top_k"),
        ({"num_keypoints": 0}, "num_keypoints"),
    ],
)
def test_bad_config_is_refused(kwargs, message):
    args = {"anchors": YOLO_POSE_ANCHORS, "strides": STRIDES, **kwargs}
    with pytest.raises(ValueError, match=message):
        YOLOPoseDecoder(**args)


def test_bad_inputs_are_refused():
    decoder = YOLOPoseDecoder(YOLO_POSE_ANCHORS, STRIDES)
    with pytest.raises(ValueError, match="4 raw levels"):
        decoder(_raw_levels()[:3])
    with pytest.raises(ValueError, match="num_keypoints"):
        decoder.nms(np.zeros((1, 10, 6 + 3 * 14), np.float32))
