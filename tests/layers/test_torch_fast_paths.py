"""Conv2D and BatchNormalization: Keras's numbers and gradients on every
backend, and on PyTorch the fast paths they exist for (no layout copies,
the analytic batch-norm gradient)."""

import keras
import numpy as np
import pytest

from kerapose.layers.batch_norm import BatchNormalization
from kerapose.layers.conv2d import Conv2D
from kerapose.testing.test_case import assert_matches_keras_layer

torch_only = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="a PyTorch-backend fast path"
)


@pytest.mark.parametrize(
    "kernel, strides, padding, dilation, bias",
    [
        (3, 1, "same", 1, False),
        (3, 2, "valid", 1, True),
        (3, 2, "same", 1, False),  # asymmetric "same" padding
        (1, 1, "valid", 1, True),
        (3, 1, "same", 2, False),
    ],
)
def test_conv_matches_keras(kernel, strides, padding, dilation, bias):
    x = np.random.default_rng(0).normal(size=(2, 11, 8, 5)).astype("float32")
    options = dict(
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        use_bias=bias,
        bias_initializer="random_normal",
    )
    ours = Conv2D(7, kernel, **options)
    assert_matches_keras_layer(
        ours, keras.layers.Conv2D(7, kernel, **options), x
    )
    assert ours.weights


def test_training_step_matches_keras():
    """One SGD step through conv + batch norm: the conv kernel's update
    carries the gradient of the batch norm's input."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6, 5, 3)).astype("float32")
    y = rng.normal(size=(4, 6, 5, 8)).astype("float32")
    bn = dict(
        momentum=0.9,
        epsilon=1e-5,
        gamma_initializer="random_uniform",
        beta_initializer="random_normal",
    )
    ours, theirs = (
        keras.Sequential(
            [
                keras.Input(x.shape[1:]),
                conv(8, 3, padding="same", use_bias=False),
                norm(**bn),
            ]
        )
        for conv, norm in (
            (Conv2D, BatchNormalization),
            (keras.layers.Conv2D, keras.layers.BatchNormalization),
        )
    )
    start = ours.get_weights()
    theirs.set_weights(start)
    for model in (ours, theirs):
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
        model.train_on_batch(x, y)
    for a, b, before in zip(
        ours.get_weights(), theirs.get_weights(), start, strict=True
    ):
        assert not np.allclose(a, before)  # every weight and statistic moved
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_inference_uses_the_moving_statistics():
    layer = BatchNormalization(epsilon=1e-5)
    x = np.random.default_rng(2).normal(size=(3, 4, 4, 6)).astype("float32")
    layer.build(x.shape)
    layer.moving_mean.assign(np.full(6, 0.5, "float32"))
    layer.moving_variance.assign(np.full(6, 4.0, "float32"))
    y = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_allclose(y, (x - 0.5) / np.sqrt(4.0 + 1e-5), atol=1e-5)


@torch_only
def test_torch_batch_norm_trains_through_the_analytic_gradient():
    import torch

    layer = BatchNormalization()
    x = torch.randn(2, 4, 4, 3, requires_grad=True)
    assert type(layer(x, training=True).grad_fn).__name__ == (
        "CustomGradientFunctionBackward"
    )
    plain = keras.layers.BatchNormalization()
    assert type(plain(x, training=True).grad_fn).__name__ != (
        "CustomGradientFunctionBackward"
    )


def _activation_copies(layer, x):
    """aten copy operations of one forward and backward pass whose output
    is as large as the input (layout copies of the activation)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    found = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = str(func.overloadpacket)
            if (
                ("copy" in name or "clone" in name or "contiguous" in name)
                and isinstance(out, torch.Tensor)
                and out.numel() >= x.size
            ):
                found.append(name)
            return out

    layer.build(tuple(x.shape))
    xt = torch.tensor(x, requires_grad=True)
    with Record():
        layer(xt).sum().backward()
    return found


@torch_only
def test_torch_conv_runs_without_layout_copies():
    x = np.random.default_rng(3).normal(size=(2, 16, 12, 8)).astype("float32")
    assert _activation_copies(Conv2D(8, 3, padding="same"), x) == []
    # The check can fail: Keras's own layer copies the activation.
    assert _activation_copies(keras.layers.Conv2D(8, 3, padding="same"), x)
