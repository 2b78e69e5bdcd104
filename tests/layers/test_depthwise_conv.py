"""DepthwiseConv: Keras' DepthwiseConv2D numbers, on every backend."""

import keras
import numpy as np
import pytest

from kerapose.layers.depthwise_conv import DepthwiseConv
from kerapose.testing.test_case import assert_matches_keras_layer


@pytest.mark.parametrize(
    "kernel, strides, padding, dilation, bias",
    [
        (3, 1, "same", 1, False),
        (3, 2, "valid", 1, False),
        (3, 2, "same", 1, True),
        (9, 1, "same", 1, False),  # PRM's spatial path
        (3, 1, "same", 6, False),  # a WASP atrous module
        (1, 1, "same", 1, False),  # OmniPose-Lite's 1x1 "separable"
    ],
)
def test_matches_keras_depthwise(kernel, strides, padding, dilation, bias):
    x = np.random.default_rng(0).normal(size=(2, 13, 10, 5)).astype("float32")
    options = dict(
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        use_bias=bias,
        bias_initializer="random_normal",
    )
    assert_matches_keras_layer(
        DepthwiseConv(kernel, **options),
        keras.layers.DepthwiseConv2D(kernel, **options),
        x,
    )


def test_gradients_match_keras_depthwise():
    x = np.random.default_rng(1).normal(size=(1, 8, 6, 4)).astype("float32")
    ours = DepthwiseConv(3, padding="same", use_bias=False)
    theirs = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)
    model_a = keras.Sequential([keras.Input((8, 6, 4)), ours])
    model_b = keras.Sequential([keras.Input((8, 6, 4)), theirs])
    theirs.set_weights(ours.get_weights())
    y = np.ones((1, 8, 6, 4), "float32")
    for model in (model_a, model_b):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.train_on_batch(x, y)
    np.testing.assert_allclose(
        ours.get_weights()[0], theirs.get_weights()[0], atol=1e-5
    )


def test_training_and_inference_paths_agree():
    """Training runs the backend's grouped kernel, inference on JAX the
    shifted sum: same numbers either way."""
    x = np.random.default_rng(2).normal(size=(2, 9, 7, 6)).astype("float32")
    layer = DepthwiseConv(3, padding="same", bias_initializer="random_normal")
    infer = keras.ops.convert_to_numpy(layer(x, training=False))
    train = keras.ops.convert_to_numpy(layer(x, training=True))
    np.testing.assert_allclose(train, infer, atol=1e-5)


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the shifted sum is JAX-only"
)
def test_jax_trains_through_the_grouped_convolution():
    import jax

    layer = DepthwiseConv(3, padding="same")
    x = np.zeros((1, 8, 8, 4), "float32")
    layer.build(x.shape)

    def jaxpr(training):
        return str(jax.make_jaxpr(lambda v: layer(v, training=training))(x))

    assert "feature_group_count=4" in jaxpr(True)
    assert "conv_general_dilated" not in jaxpr(False)
