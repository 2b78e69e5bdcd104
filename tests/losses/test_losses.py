import keras
import numpy as np
import pytest

from kerapose.losses import OHKMMSE
from kerapose.losses import KeypointMSE
from kerapose.testing.test_case import to_numpy


def _maps(seed, shape=(2, 8, 6, 5)):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=shape).astype("float32")


def _per_keypoint(y, p):
    return 0.5 * ((p - y) ** 2).mean(axis=(1, 2))


def test_mse_matches_the_official_formula():
    y, p = _maps(0), _maps(1)
    w = np.array([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1]], "float32")
    got = float(to_numpy(KeypointMSE()(y, p, sample_weight=w)))
    expected = (
        _per_keypoint(y * w[:, None, None], p * w[:, None, None])
    ).mean()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert float(to_numpy(KeypointMSE()(y, y))) == 0.0


def test_ohkm_matches_the_official_formula():
    y, p = _maps(2), _maps(3)
    w = np.array([[1, 1, 1, 1, 0], [1, 0, 1, 0, 1]], "float32")
    got = float(to_numpy(OHKMMSE(topk=2)(y, p, sample_weight=w)))
    losses = _per_keypoint(y, p) * w**2
    expected = np.mean(np.sort(losses, axis=1)[:, -2:].sum(axis=1) / 2)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("loss", [KeypointMSE(), OHKMMSE(topk=3)])
def test_no_visible_keypoints_gives_zero_not_nan(loss):
    y, p = _maps(4), _maps(5)
    value = float(to_numpy(loss(y, p, sample_weight=np.zeros((2, 5)))))
    assert value == 0.0


@pytest.mark.parametrize("loss", [KeypointMSE(), OHKMMSE(topk=3)])
def test_serialization_and_fit(loss):
    revived = type(loss).from_config(loss.get_config())
    assert revived.get_config() == loss.get_config()
    inputs = keras.Input((8, 6, 5))
    model = keras.Model(inputs, keras.layers.Conv2D(5, 1)(inputs))
    model.compile(optimizer="sgd", loss=loss)
    history = model.fit(
        _maps(6), _maps(7), sample_weight=np.ones((2, 5)), verbose=0
    )
    assert np.isfinite(history.history["loss"][0])


def test_ohkm_validates():
    with pytest.raises(ValueError, match="positive"):
        OHKMMSE(topk=0)
