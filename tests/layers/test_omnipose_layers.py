"""OmniPose layers: separable conv, Gaussian upsampling, WASPv2, and the
OmniPose options of the HRNet layers."""

import numpy as np

from kerapose.layers import ConvBNAct
from kerapose.layers import ExchangeUnit
from kerapose.layers import GaussianUpsampling
from kerapose.layers import HRModule
from kerapose.layers import SeparableConv
from kerapose.layers import WASPv2
from kerapose.layers.gaussian_upsampling import gaussian_kernel
from kerapose.testing.test_case import TestCase
from kerapose.testing.test_case import to_numpy


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _identity_bn(bn):
    bn.moving_variance.assign(np.full(bn.moving_variance.shape, 1 - 1e-5))


def _transposed_conv_reference(x, kernel):
    """PyTorch ConvTranspose2d(3, stride=2, padding=1, output_padding=1),
    one channel: scatter each input pixel, then drop the first row and
    column of the (2n+1)-sized result."""
    h, w = x.shape
    full = np.zeros((2 * h + 1, 2 * w + 1), "float64")
    for i in range(h):
        for j in range(w):
            full[2 * i : 2 * i + 3, 2 * j : 2 * j + 3] += x[i, j] * kernel
    return full[1:, 1:]


class SeparableConvTest(TestCase):
    def test_basics(self):
        self.run_layer_test(
            SeparableConv,
            {"filters": 6, "kernel_size": 3, "dilation_rate": 2},
            _x(2, 8, 6, 4),
            (2, 8, 6, 6),
            expected_num_trainable_weights=2,
        )

    def test_relu_between_depthwise_and_pointwise(self):
        layer = SeparableConv(1, kernel_size=1)
        layer.build((1, 2, 2, 2))
        layer.depthwise.kernel.assign(np.ones((1, 1, 2, 1), "float32"))
        layer.pointwise.kernel.assign(np.ones((1, 1, 2, 1), "float32"))
        x = np.array([[[[1.0, -3.0]], [[-1.0, 2.0]]]], "float32")
        y = to_numpy(layer(x))[..., 0]
        # Without the ReLU this would be the channel sums -2 and 1.
        np.testing.assert_allclose(y, [[[1.0], [2.0]]])

    def test_separable_conv_bn_act_is_strided_and_named(self):
        layer = ConvBNAct(8, 3, strides=2, separable=True)
        out = layer(_x(1, 8, 6, 4))
        assert tuple(out.shape) == (1, 4, 3, 8)
        names = {v.path.split("/", 1)[1] for v in layer.weights}
        assert {"conv/depthwise/kernel", "conv/pointwise/kernel"} <= names
        assert "conv/kernel" not in names
        with self.assertRaisesRegex(ValueError, "no conv bias"):
            ConvBNAct(8, 3, use_bias=True, separable=True)


class GaussianUpsamplingTest(TestCase):
    def test_basics(self):
        layer = self.run_layer_test(
            GaussianUpsampling,
            {"filters": 4, "steps": 2},
            _x(2, 3, 2, 6),
            (2, 12, 8, 4),
            expected_num_trainable_weights=6,
            # BN statistics of 2 steps, and the fixed Gaussian.
            expected_num_non_trainable_weights=5,
        )
        assert not layer.gaussian.trainable

    def test_filter_is_the_official_gaussian(self):
        kernel = gaussian_kernel(3, 3.0)
        np.testing.assert_allclose(kernel.sum(), 1.0, rtol=1e-6)
        np.testing.assert_allclose(kernel, kernel.T)
        # sigma 3: a corner weighs exp(-2 / 18) of the centre.
        np.testing.assert_allclose(
            kernel[0, 0] / kernel[1, 1], np.exp(-2 / 18), rtol=1e-6
        )
        layer = GaussianUpsampling(3)
        layer.build((1, 4, 4, 3))
        weights = to_numpy(layer.gaussian.kernel)
        for c in range(3):
            np.testing.assert_allclose(weights[:, :, c, 0], kernel)

    def test_transposed_conv_matches_pytorch_alignment(self):
        layer = GaussianUpsampling(1, steps=1)
        layer.build((1, 3, 4, 1))
        kernel = np.arange(1, 10, dtype="float32").reshape(3, 3)
        layer.deconvs[0].kernel.assign(kernel[:, :, None, None])
        _identity_bn(layer.norms[0])
        delta = np.zeros((3, 3, 1, 1), "float32")
        delta[1, 1] = 1.0
        layer.gaussian.kernel.assign(delta)
        x = np.abs(_x(1, 3, 4, 1))  # positive, so the ReLU is inert
        y = to_numpy(layer(x, training=False))[0, :, :, 0]
        expected = _transposed_conv_reference(x[0, :, :, 0], kernel)
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)

    def test_validates_steps(self):
        with self.assertRaisesRegex(ValueError, "steps"):
            GaussianUpsampling(4, steps=0)


class WASPv2Test(TestCase):
    def test_decoded_features(self):
        self.run_layer_test(
            WASPv2,
            {"channels": 8},
            [_x(2, 8, 6, 8), _x(2, 8, 6, 16, seed=1)],
            (2, 8, 6, 8),
        )

    def test_heatmaps(self):
        layer = self.run_layer_test(
            WASPv2,
            {"channels": 16, "num_outputs": 5},
            [_x(2, 8, 6, 16), _x(2, 8, 6, 32, seed=1)],
            (2, 8, 6, 5),
        )
        # The low-level branch is reduced to channels // 8.
        assert layer.low_level.filters == 2
        assert layer.decode1.conv.kernel.shape == (3, 3, 18, 16)
        dilations = [m.dilation_rate for m in layer.waterfall]
        assert dilations == [1, 6, 12, 18]
        assert all(m.separable for m in layer.waterfall)

    def test_validates(self):
        with self.assertRaisesRegex(ValueError, "at least 8"):
            WASPv2(4)
        with self.assertRaisesRegex(ValueError, "4 entries"):
            WASPv2(8, dilations=(1, 6))
        with self.assertRaisesRegex(ValueError, "features, low_level"):
            WASPv2(8).build((1, 8, 6, 8))


class OmniPoseExchangeTest(TestCase):
    def test_gaussian_exchange_unit(self):
        layer = self.run_layer_test(
            ExchangeUnit,
            {"channels": [4, 8, 16], "upsampling": "gaussian"},
            [_x(2, 8, 8, 4), _x(2, 4, 4, 8, seed=1), _x(2, 2, 2, 16, seed=2)],
            [(2, 8, 8, 4), (2, 4, 4, 8), (2, 2, 2, 16)],
        )
        gaussians = [v.path for v in layer.weights if "gaussian" in v.path]
        # One fixed filter per upward path: 0<-1, 0<-2, 1<-2.
        assert len(gaussians) == 3
        with self.assertRaisesRegex(ValueError, "upsampling"):
            ExchangeUnit([4, 8], upsampling="bilinear")

    def test_separable_hr_module(self):
        layer = HRModule(
            [4, 8], num_blocks=1, upsampling="gaussian", separable=True
        )
        out = layer([_x(1, 8, 8, 4), _x(1, 4, 4, 8, seed=1)])
        assert [tuple(o.shape) for o in out] == [(1, 8, 8, 4), (1, 4, 4, 8)]
        kernels = [v.path for v in layer.weights if v.path.endswith("kernel")]
        plain = [
            p for p in kernels if "/conv/kernel" in p and "deconv" not in p
        ]
        # Every conv is separable; transposed convs and Gaussians are not.
        assert plain == []
        revived = HRModule.from_config(layer.get_config())
        assert revived.separable and revived.upsampling == "gaussian"
