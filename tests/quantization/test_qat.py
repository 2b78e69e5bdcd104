"""quantize_aware: BN folding and fake quantization, trained on every
backend with model.fit."""

import keras
import numpy as np
import pytest

from kerapose.layers import ConvBNAct
from kerapose.quantization import ActivationQuantizer
from kerapose.quantization import quantize_aware


def _small_model():
    """Plain and separable ConvBNAct, depthwise, transposed conv, head."""
    inputs = keras.Input((16, 16, 3), name="images")
    x = ConvBNAct(8, 3, strides=2, name="stem")(inputs)
    x = ConvBNAct(8, 3, separable=True, name="sep")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Conv2DTranspose(8, 2, strides=2, name="up")(x)
    x = keras.layers.Conv2D(4, 1, name="head")(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(0)
    for v in model.weights:
        if "moving_variance" in v.path or "gamma" in v.path:
            v.assign(rng.uniform(0.5, 2.0, v.shape).astype("float32"))
        elif "moving_mean" in v.path or "beta" in v.path:
            v.assign(rng.normal(0, 0.3, v.shape).astype("float32"))
    return model


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(16, 16, 16, 3)).astype("float32")


def test_qat_forward_stays_close_to_float(data):
    model = _small_model()
    float_out = keras.ops.convert_to_numpy(model(data))
    names = [w.path for w in model.weights]
    quantize_aware(model, data)
    qat_out = keras.ops.convert_to_numpy(model(data))
    # The original weights keep their paths (weight files still load);
    # the new ranges get unique paths under their layer.
    paths = [w.path for w in model.weights]
    assert [p for p in paths if "qat_" not in p] == names
    assert len(set(paths)) == len(paths)
    assert "stem/qat_output/range_max" in paths
    quantizers = [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, ActivationQuantizer)
    ]
    assert len(quantizers) == 5  # in, out, 2 ConvBNAct outputs, 1 inner
    err = np.abs(qat_out - float_out).mean() / np.abs(float_out).mean()
    assert 0 < err < 0.05, err


def test_bn_is_folded_with_moving_statistics(data):
    model = _small_model()
    stem = model.get_layer("stem")
    expected = keras.ops.convert_to_numpy(stem(data, training=False))
    quantize_aware(model, data)
    # Training mode too: the statistics are frozen, not batch statistics.
    mean_before = stem.bn.moving_mean.numpy().copy()
    folded = keras.ops.convert_to_numpy(stem(data, training=True))
    np.testing.assert_array_equal(stem.bn.moving_mean.numpy(), mean_before)
    step = (expected.max() - 0.0) / 255
    assert np.abs(folded - expected).mean() < step


def test_fit_trains_through_the_fake_quantizers(data):
    model = _small_model()
    target = keras.ops.convert_to_numpy(model(data)) * 0.5
    quantize_aware(model, data)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    kernel = model.get_layer("stem").conv.kernel
    before = kernel.numpy().copy()
    out_range = float(model.qat_output.range_max.numpy())
    history = model.fit(data, target, epochs=4, batch_size=8, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert not np.allclose(before, kernel.numpy())
    assert float(model.qat_output.range_max.numpy()) != out_range
    for w in model.trainable_weights:
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(w)))


def test_refuses_unbuilt_or_prepared_models(data):
    unbuilt = keras.Sequential([keras.layers.Conv2D(4, 3)])
    with pytest.raises(ValueError, match="has not been built"):
        quantize_aware(unbuilt, data)
    model = quantize_aware(_small_model(), data)
    with pytest.raises(ValueError, match="already quantize-aware"):
        quantize_aware(model, data)
    with pytest.raises(ValueError, match="no images"):
        quantize_aware(_small_model(), np.zeros((0, 16, 16, 3), "float32"))
