import numpy as np
import pytest

from kerapose.losses import MultiStageHeatmapLoss
from kerapose.testing.test_case import to_numpy


def _maps(seed, shape):
    return np.random.default_rng(seed).uniform(size=shape).astype("float32")


def _mse(y, p, w):
    # KeypointMSE with keypoint weights: mean over (B, K) of w * loss.
    return (0.5 * ((p - y) ** 2).mean(axis=(1, 2)) * w).mean()


def _ohkm(y, p, w, topk):
    losses = 0.5 * ((p - y) ** 2).mean(axis=(1, 2)) * w**2
    return np.mean(np.sort(losses, axis=1)[:, -topk:].mean(axis=1))


def _expected(y_true, y_pred, w, topk, units=4, per_unit=False):
    num_units = y_pred.shape[1]
    total = 0.0
    for u in range(num_units):
        j = u % units
        if per_unit:
            last_stage = u >= num_units - units
            shift = 1 if y_true.shape[1] == units + 1 and last_stage else 0
            target = y_true[:, j + shift]
        else:
            target = y_true
        if j == units - 1:
            total += _ohkm(target, y_pred[:, u], w, topk)
        else:
            total += 0.25 * _mse(target, y_pred[:, u], w)
    return total


def test_single_target_for_every_unit():
    y = _maps(0, (2, 6, 4, 5))
    p = _maps(1, (2, 8, 6, 4, 5))  # 2 stages x 4 units
    w = np.array([[1, 0, 1, 1, 1], [1, 1, 0, 1, 0]], "float32")
    got = float(to_numpy(MultiStageHeatmapLoss(topk=3)(y, p, w)))
    np.testing.assert_allclose(got, _expected(y, p, w, 3), rtol=1e-5)


def test_coarse_to_fine_targets():
    # 5 targets: stage 0 uses 0-3, the last stage 1-4.
    y = _maps(2, (2, 5, 6, 4, 5))
    p = _maps(3, (2, 8, 6, 4, 5))
    w = np.ones((2, 5), "float32")
    loss = MultiStageHeatmapLoss(topk=2)
    got = float(to_numpy(loss(y, p, w)))
    want = _expected(y, p, w, 2, per_unit=True)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # Predicting each unit's own target exactly gives zero loss.
    exact = np.concatenate([y[:, 0:4], y[:, 1:5]], axis=1)
    assert float(to_numpy(loss(y, exact, w))) == pytest.approx(0.0, abs=1e-7)


def test_serialization():
    loss = MultiStageHeatmapLoss(units_per_stage=4, topk=6)
    revived = MultiStageHeatmapLoss.from_config(loss.get_config())
    assert revived.get_config() == loss.get_config()


def test_bad_shapes_are_explained():
    loss = MultiStageHeatmapLoss()
    with pytest.raises(ValueError, match=r"\(B, U, h, w, K\)"):
        loss(_maps(0, (2, 6, 4, 5)), _maps(1, (2, 6, 4, 5)))
    with pytest.raises(ValueError, match="whole number of stages"):
        loss(_maps(0, (2, 6, 4, 5)), _maps(1, (2, 6, 6, 4, 5)))
    with pytest.raises(ValueError, match="4 or 5 heatmap sizes"):
        loss(_maps(0, (2, 3, 6, 4, 5)), _maps(1, (2, 4, 6, 4, 5)))
    with pytest.raises(ValueError, match="positive"):
        MultiStageHeatmapLoss(units_per_stage=0)
