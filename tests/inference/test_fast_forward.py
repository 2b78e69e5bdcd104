"""FastForward: the compiled inference pass equals the official outputs.

On PyTorch it traces, freezes, skips the layout double copy and folds
BatchNorm into the convolutions; the official fixtures (random weights,
randomised BatchNorm statistics) show that nothing changes the numbers.
"""

import keras
import numpy as np
import pytest

from kerapose import zoo
from kerapose.convert import convert_checkpoint
from kerapose.inference import FastForward
from tests.conftest import shared_path
from tests.convert import test_omnipose_parity
from tests.convert import test_rsn_parity
from tests.convert.test_hrnet_parity import build_model as build_hrnet

TOLERANCE = 1e-4  # README section 3, as the parity tests


def _nhwc(name, file):
    return np.load(shared_path("reference", name, file)).transpose(0, 2, 3, 1)


def _converted(model, name):
    report = convert_checkpoint(
        model, shared_path("reference", name, "model.pth")
    )
    assert report.ok
    return model


def _max_diff(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


@pytest.mark.parametrize(
    "name, build",
    [
        ("hrnet_tiny", build_hrnet),
        ("omnipose_lite_tiny", lambda: test_omnipose_parity.build_model(True)),
    ],
)
def test_heatmap_models_match_official_outputs(name, build):
    model = _converted(build(), name)
    x = np.ascontiguousarray(_nhwc(name, "input.npy"))
    forward = FastForward(model)
    y = forward(x)
    assert _max_diff(y, _nhwc(name, "output.npy")) < TOLERANCE
    # A second call reuses the compiled function and gives the same.
    np.testing.assert_array_equal(forward(x), y)


def test_rsn_all_units_match_official_output():
    model = test_rsn_parity.build_model()
    _converted(model, "rsn_tiny")
    x = test_rsn_parity.rgb(_nhwc("rsn_tiny", "input.npy"))
    y = FastForward(model)(x)
    assert y.shape[1] == 8  # (B, 2 stages x 4 units, h, w, K)
    assert _max_diff(y[:, -1], _nhwc("rsn_tiny", "output.npy")) < TOLERANCE


def test_higherhrnet_both_outputs_match_official():
    model = _converted(
        zoo.load("test_higherhrnet", compile=False), "higherhrnet_tiny"
    )
    x = np.ascontiguousarray(_nhwc("higherhrnet_tiny", "input.npy"))
    low, high = FastForward(model)(x)
    assert _max_diff(low, _nhwc("higherhrnet_tiny", "output_0.npy")) < 1e-4
    assert _max_diff(high, _nhwc("higherhrnet_tiny", "output_1.npy")) < 1e-4


def test_new_weights_are_picked_up():
    model = zoo.load("test_hrnet", compile=False)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3))
    x = x.astype("float32")
    forward = FastForward(model)
    before = forward(x)
    kernel, bias = model.get_layer("heatmap_head").weights[:2]
    kernel.assign(kernel.value * 2.0)  # no refresh(): noticed by itself
    # The head is a 1x1 conv: doubling its kernel doubles all but the bias.
    # (Relative checks: the untrained head's outputs are about 1e-11.)
    bias = keras.ops.convert_to_numpy(bias.value)
    after = forward(x)
    scale = np.abs(after).max()
    assert _max_diff(after, 2 * before - bias) < 1e-4 * scale
    assert _max_diff(after, before) > 0.3 * scale


def test_batch_sizes_compile_separately():
    model = zoo.load("test_hrnet", compile=False)
    forward = FastForward(model, cache_size=1)
    x = np.random.default_rng(1).normal(size=(3, 64, 64, 3))
    x = x.astype("float32")
    one = forward(x[1:2])
    three = forward(x)
    assert one.shape[0] == 1 and three.shape[0] == 3
    assert _max_diff(three[1:2], one) < 1e-5
    assert len(forward._cache) == 1


def test_wrong_input_size_is_named():
    model = zoo.load("test_hrnet", compile=False)
    with pytest.raises(ValueError, match=r"expects inputs of shape.*Resize"):
        FastForward(model)(np.zeros((1, 32, 64, 3), "float32"))
