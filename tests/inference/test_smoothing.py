"""One-Euro filter and per-track keypoint smoothing (NumPy only)."""

import math

import numpy as np
import pytest

from kerapose.inference import KeypointSmoother
from kerapose.inference import OneEuroFilter
from kerapose.inference import PoseResult


def test_three_steps_by_hand():
    # A period of 1 / (2 pi) s makes alpha(c) = c / (c + 1).
    period = 1.0 / (2.0 * math.pi)
    one_euro = OneEuroFilter(min_cutoff=1.0, beta=1.0, d_cutoff=1.0)
    outs = [
        one_euro(np.array([x]), i * period)[0] for i, x in enumerate([0, 1, 1])
    ]
    # Step 1: derivative 2 pi, filtered with alpha 1/2 from 0: pi; cutoff
    # 1 + pi.
    a1 = (1 + math.pi) / (2 + math.pi)
    # Step 2: derivative (1 - a1) 2 pi = 2 pi / (2 + pi), filtered:
    # pi / (2 + pi) + pi / 2.
    c2 = 1 + math.pi / (2 + math.pi) + math.pi / 2
    a2 = c2 / (c2 + 1)
    expected = [0.0, a1, a2 + (1 - a2) * a1]
    np.testing.assert_allclose(outs, expected, rtol=1e-12)
    np.testing.assert_allclose(outs, [0.0, 0.805508, 0.953491], atol=1e-6)
    # The same steps from the frame rate rather than timestamps.
    by_fps = OneEuroFilter(1.0, 1.0, 1.0, fps=2 * math.pi)
    np.testing.assert_allclose(
        [by_fps(np.array([x]))[0] for x in [0, 1, 1]], expected, rtol=1e-12
    )


def test_filters_each_entry_of_a_keypoint_array_on_its_own():
    period = 1.0 / (2.0 * math.pi)
    one_euro = OneEuroFilter(min_cutoff=1.0, beta=1.0, fps=1 / period)
    steps = [np.zeros((3, 2)), np.ones((3, 2)), np.ones((3, 2))]
    steps[1][2, 1] = 5.0  # one coordinate jumps further: higher cutoff
    outs = [one_euro(x) for x in steps]
    scalar = OneEuroFilter(min_cutoff=1.0, beta=1.0, fps=1 / period)
    for out, x in zip(outs, steps):
        np.testing.assert_allclose(out[0, 0], scalar(x[:1, 0])[0])
        assert out.shape == (3, 2) and out.dtype == np.float64
    assert outs[1][2, 1] / 5.0 > outs[1][0, 0]  # follows more of its jump


def test_constant_input_converges_with_beta_zero():
    one_euro = OneEuroFilter(min_cutoff=1.0, beta=0.0, fps=30.0)
    one_euro(np.zeros((17, 2)))
    # alpha = 1 / (1 + 30 / (2 pi)) at 30 fps.
    alpha = 1.0 / (1.0 + 30.0 / (2.0 * math.pi))
    outs = [one_euro(np.full((17, 2), 10.0)) for _ in range(150)]
    np.testing.assert_allclose(outs[0], 10.0 * alpha)
    np.testing.assert_allclose(outs[1], 10.0 * (1 - (1 - alpha) ** 2))
    assert np.all(np.diff([o[0, 0] for o in outs]) > 0)
    np.testing.assert_allclose(outs[-1], 10.0, atol=1e-9)


def _ramp_lag(beta):
    one_euro = OneEuroFilter(min_cutoff=1.0, beta=beta, fps=30.0)
    for i in range(90):
        x = 100.0 * i / 30.0  # 100 px per second
        out = one_euro(np.array([[x, 0.0]]))
    return x - out[0, 0]


def test_higher_beta_lags_less_on_a_ramp():
    slow, fast = _ramp_lag(0.0), _ramp_lag(0.1)
    # Beta 0 settles at about v * tau = 100 / (2 pi) px behind (continuous
    # limit 15.9, discretely 100 / 30 * (1 / alpha - 1) = 15.9).
    assert slow == pytest.approx(100.0 / 30.0 * 30.0 / (2 * math.pi), 1e-3)
    # Cutoff 1 + 0.1 * 100 = 11 Hz: about 11 times less lag.
    assert 0.5 < fast < slow / 8


def test_invalid_entries_hold_the_state_and_pass_through():
    one_euro = OneEuroFilter(min_cutoff=1.0, beta=0.0, fps=30.0)
    reference = OneEuroFilter(min_cutoff=1.0, beta=0.0, fps=30.0)
    first = np.array([[0.0, 0.0], [50.0, 50.0]])
    one_euro(first)
    reference(first[:1])
    glitch = np.array([[1.0, 1.0], [400.0, -300.0]])
    out = one_euro(glitch, valid=[True, False])
    np.testing.assert_array_equal(out[1], [400.0, -300.0])  # raw input
    reference(glitch[:1])
    # Back after one held frame: one step from 50 over two frame periods.
    back = np.array([[2.0, 2.0], [60.0, 60.0]])
    out = one_euro(back)
    alpha2 = 1.0 / (1.0 + 15.0 / (2.0 * math.pi))  # period 2 / 30 s
    np.testing.assert_allclose(out[1], 50.0 + alpha2 * 10.0)
    np.testing.assert_allclose(out[:1], reference(back[:1]))


def test_entry_invalid_from_the_start_begins_at_its_first_valid_value():
    one_euro = OneEuroFilter()
    one_euro(np.array([[0.0, 0.0], [99.0, 99.0]]), valid=[True, False])
    out = one_euro(np.array([[0.0, 0.0], [7.0, 8.0]]))
    np.testing.assert_array_equal(out[1], [7.0, 8.0])


def _frame(points, ids, scores=None):
    kpts = np.asarray(points, np.float32)
    n, k = kpts.shape[:2]
    return PoseResult(
        kpts,
        np.ones((n, k), np.float32) if scores is None else scores,
        np.zeros((n, 4), np.float32),
        np.ones(n, np.float32),
        (100, 100),
        track_ids=np.asarray(ids, np.int64),
    )


def test_smoother_keeps_one_filter_per_track():
    smoother = KeypointSmoother(min_cutoff=1.0, beta=0.05, fps=30.0)
    filters = {7: OneEuroFilter(1.0, 0.05), 9: OneEuroFilter(1.0, 0.05)}
    rng = np.random.default_rng(0)
    for step in range(5):
        pose = {7: rng.uniform(0, 50, (4, 2)), 9: rng.uniform(50, 99, (4, 2))}
        ids = [9, 7] if step % 2 else [7, 9]
        out = smoother.update(_frame([pose[i] for i in ids], ids))
        assert out.keypoints.dtype == np.float32
        np.testing.assert_array_equal(out.track_ids, ids)
        for n, i in enumerate(ids):
            expected = filters[i](pose[i].astype(np.float32))
            np.testing.assert_allclose(out.keypoints[n], expected, rtol=1e-6)
    assert smoother.track_ids == [7, 9]


def test_smoother_holds_low_score_joints_and_drops_vanished_tracks():
    smoother = KeypointSmoother(score_threshold=0.5, max_age=1, fps=10.0)
    smoother.update(_frame([[[0, 0], [10, 10]]], [3]), timestamp=0.0)
    low = np.array([[0.9, 0.1]], np.float32)
    out = smoother.update(
        _frame([[[1, 1], [90, 90]]], [3], scores=low), timestamp=0.1
    )
    np.testing.assert_array_equal(out.keypoints[0, 1], [90, 90])
    assert 0 < out.keypoints[0, 0, 0] < 1  # the seen joint is smoothed
    smoother.update(_frame(np.zeros((0, 2, 2)), []), timestamp=0.2)
    assert smoother.track_ids == [3]  # absent 1 frame <= max_age
    smoother.update(_frame(np.zeros((0, 2, 2)), []), timestamp=0.3)
    assert smoother.track_ids == []
    # A vanished track's filter is gone: its next value passes through.
    out = smoother.update(_frame([[[5, 5], [6, 6]]], [3]), timestamp=0.4)
    np.testing.assert_array_equal(out.keypoints, [[[5, 5], [6, 6]]])


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="`min_cutoff`"):
        OneEuroFilter(min_cutoff=-1.0)
    with pytest.raises(ValueError, match="`beta`"):
        OneEuroFilter(beta=-0.1)
    with pytest.raises(ValueError, match="`d_cutoff`"):
        OneEuroFilter(d_cutoff=0.0)
    with pytest.raises(ValueError, match="`fps`"):
        KeypointSmoother(fps=0)
    with pytest.raises(ValueError, match="`min_cutoff`"):
        KeypointSmoother(min_cutoff=float("nan"))
    with pytest.raises(ValueError, match="`max_age`"):
        KeypointSmoother(max_age=-2)
    one_euro = OneEuroFilter()
    one_euro(np.zeros((17, 2)), timestamp=1.0)
    with pytest.raises(ValueError, match=r"`x` must keep its shape \(17, 2\)"):
        one_euro(np.zeros((16, 2)))
    with pytest.raises(ValueError, match="`valid`"):
        one_euro(np.zeros((17, 2)), valid=np.ones(16, bool))
    with pytest.raises(ValueError, match="`timestamp`"):
        one_euro(np.zeros((17, 2)), timestamp=1.0)
    with pytest.raises(ValueError, match="`x` has NaN"):
        one_euro(np.full((17, 2), np.nan), timestamp=2.0)
    untracked = _frame([[[0, 0]]], [0])
    untracked.track_ids = None
    with pytest.raises(ValueError, match="PoseTracker"):
        KeypointSmoother().update(untracked)
    with pytest.raises(ValueError, match="one distinct id"):
        KeypointSmoother().update(_frame([[[0, 0]], [[1, 1]]], [4, 4]))
