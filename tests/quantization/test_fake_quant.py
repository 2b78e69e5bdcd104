"""Fake quantization in keras.ops: runs and trains on every backend."""

import keras
import numpy as np
import pytest

from kerapose.quantization import ActivationQuantizer
from kerapose.quantization.fake_quant import fake_quant_depthwise_kernel
from kerapose.quantization.fake_quant import fake_quant_kernel


def test_kernel_is_per_channel_symmetric_int8():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 4, 6)).astype("float32")
    kernel[..., 5] *= 100.0  # one wide channel must not coarsen the others
    out = keras.ops.convert_to_numpy(fake_quant_kernel(kernel))
    for c in range(6):
        bound = np.abs(kernel[..., c]).max()
        step = 2 * bound / 254
        levels = np.round(out[..., c] / step)
        np.testing.assert_allclose(out[..., c], levels * step, atol=1e-4)
        assert np.abs(levels).max() == 127
        assert np.abs(out[..., c] - kernel[..., c]).max() <= step / 2 + 1e-5
    zero = np.zeros((3, 3, 4, 6), "float32")
    zero[0, 0, 0, :] = 1.0
    assert keras.ops.convert_to_numpy(fake_quant_kernel(zero))[1, 1, 1, 0] == 0


def test_depthwise_kernel_channels_are_c_times_m():
    kernel = np.ones((3, 3, 2, 2), "float32")
    kernel[..., 1, 1] = 50.0
    kernel[0, 0, 0, 0] = 0.3
    out = keras.ops.convert_to_numpy(fake_quant_depthwise_kernel(kernel))
    # Channel (0, 0) keeps its own range: 0.3 is on its 1/127 grid.
    assert abs(out[0, 0, 0, 0] - round(0.3 * 127) / 127) < 1e-6


def test_activation_range_calibrates_trains_and_quantizes():
    layer = ActivationQuantizer(momentum=0.5)
    x = np.linspace(-1.0, 3.0, 1000, dtype="float32").reshape(10, 100)
    layer.build(x.shape)
    layer.calibrating = True
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    layer.calibrating = False
    low, high = (float(v.numpy()) for v in (layer.range_min, layer.range_max))
    assert (low, high) == (-1.0, 3.0)
    out = keras.ops.convert_to_numpy(layer(x * 2.0))
    step = 4.0 / 255  # the range is nudged so that zero is a level
    assert -1.0 - step <= out.min() and out.max() <= 3.0 + step
    assert len(np.unique(np.round(out, 5))) <= 256
    layer(x * 2.0, training=True)  # EMA halfway to the batch range
    low, high = (float(v.numpy()) for v in (layer.range_min, layer.range_max))
    assert low == pytest.approx(-1.5) and high == pytest.approx(4.5)


def test_fit_passes_gradients_through_fake_quant():
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(8, name="dense")(inputs)
    outputs = ActivationQuantizer(name="q")(hidden)
    model = keras.Model(inputs, outputs)
    quantizer = model.get_layer("q")
    quantizer.range_min.assign(-4.0)
    quantizer.range_max.assign(4.0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8)).astype("float32")
    before = model.get_layer("dense").kernel.numpy().copy()
    history = model.fit(x, x, epochs=3, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.allclose(before, model.get_layer("dense").kernel.numpy())
    assert float(quantizer.range_max.numpy()) != 4.0
