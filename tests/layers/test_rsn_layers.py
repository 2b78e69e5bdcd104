import keras
import numpy as np
import pytest

from kerapose.layers import AlignedBilinearResize
from kerapose.layers import PoseRefineMachine
from kerapose.layers import ResidualStepsBlock
from kerapose.layers.aligned_resize import aligned_interpolation_matrix
from kerapose.testing.test_case import TestCase
from kerapose.testing.test_case import to_numpy


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _reference_resize(x, size):
    """Corner-aligned bilinear resize, one output pixel at a time."""
    b, h, w, c = x.shape
    out = np.zeros((b, *size, c), np.float64)
    for i in range(size[0]):
        sy = i * (h - 1) / (size[0] - 1) if size[0] > 1 else 0.0
        y0 = min(int(np.floor(sy)), h - 1)
        y1 = min(y0 + 1, h - 1)
        fy = sy - y0
        for j in range(size[1]):
            sx = j * (w - 1) / (size[1] - 1) if size[1] > 1 else 0.0
            x0 = min(int(np.floor(sx)), w - 1)
            x1 = min(x0 + 1, w - 1)
            fx = sx - x0
            out[:, i, j] = (
                x[:, y0, x0] * (1 - fy) * (1 - fx)
                + x[:, y0, x1] * (1 - fy) * fx
                + x[:, y1, x0] * fy * (1 - fx)
                + x[:, y1, x1] * fy * fx
            )
    return out


class AlignedBilinearResizeTest(TestCase):
    def test_layer_basics(self):
        self.run_layer_test(
            AlignedBilinearResize,
            {"size": (6, 4)},
            _x(2, 3, 2, 5),
            (2, 6, 4, 5),
            expected_num_trainable_weights=0,
            run_training_check=False,
        )

    @pytest.mark.parametrize(
        "in_hw, size", [((3, 2), (6, 4)), ((6, 4), (24, 16)), ((5, 7), (3, 2))]
    )
    def test_matches_reference(self, in_hw=(3, 2), size=(6, 4)):
        x = _x(2, *in_hw, 3)
        got = to_numpy(AlignedBilinearResize(size)(x))
        np.testing.assert_allclose(got, _reference_resize(x, size), atol=1e-5)

    def test_corners_are_kept(self):
        # Half-pixel (Keras / align_corners=False) sampling would blend the
        # corner pixels with their neighbours.
        x = _x(1, 3, 2, 1)
        y = to_numpy(AlignedBilinearResize((12, 8))(x))
        for r, c in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
            np.testing.assert_allclose(y[0, r, c], x[0, r, c], rtol=1e-6)

    def test_interpolation_rows_sum_to_one(self):
        m = aligned_interpolation_matrix(17, 5)
        np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=1e-6)

    def test_validates(self):
        with self.assertRaisesRegex(ValueError, "positive"):
            AlignedBilinearResize((0, 4))
        with self.assertRaisesRegex(ValueError, "static"):
            AlignedBilinearResize((4, 4)).build((None, None, None, 3))


class ResidualStepsBlockTest(TestCase):
    def test_layer_basics(self):
        # 16 input channels: branches of 16 * 26 // 64 = 6 channels. Split,
        # 10 steps, merge and projection = 13 ConvBNAct with a conv bias.
        block = self.run_layer_test(
            ResidualStepsBlock,
            {"filters": 24, "strides": 2},
            _x(2, 8, 6, 16),
            (2, 4, 3, 24),
            expected_num_trainable_weights=13 * 4,
            expected_num_non_trainable_weights=13 * 2,
        )
        assert block.branch_channels == 6

    def test_official_inner_width_rule(self):
        # The divisor is a literal 64, whatever the stem width.
        for channels, expected in ((8, 3), (16, 6), (32, 13), (512, 208)):
            block = ResidualStepsBlock(channels)
            block.build((None, 8, 8, channels))
            assert block.branch_channels == expected
            assert tuple(block.split_conv.conv.kernel.shape) == (
                1,
                1,
                channels,
                4 * expected,
            )

    def test_layer_names(self):
        block = ResidualStepsBlock(8, strides=2)
        block.build((None, 8, 8, 8))
        names = sorted({v.path.split("/")[1] for v in block.weights})
        steps = [
            f"branch{b}_step{k}" for b in range(1, 5) for k in range(1, b + 1)
        ]
        assert names == sorted(
            ["split_conv", "merge_conv", "downsample", *steps]
        )

    def test_expansion(self):
        block = ResidualStepsBlock(8, expansion=4)
        y = block(_x(1, 8, 8, 16))
        assert tuple(y.shape) == (1, 8, 8, 32)

    def test_intra_level_fusion_follows_the_official_equations(self):
        block = ResidualStepsBlock(8)
        x = _x(1, 6, 4, 8)
        block(x)
        rng = np.random.default_rng(1)
        for v in block.trainable_weights:  # O(1) activations everywhere
            v.assign(rng.normal(size=v.shape).astype("float32") * 0.5)
        c = block.branch_channels

        def u(b, k, t):
            return to_numpy(block.steps[b - 1][k - 1](t, training=False))

        s = to_numpy(block.split_conv(x, training=False))
        s0, s1, s2, s3 = (s[..., i * c : (i + 1) * c] for i in range(4))
        o11 = u(1, 1, s0)
        o21 = u(2, 1, s1 + o11)
        o22 = u(2, 2, o21)
        o31 = u(3, 1, s2 + o21)
        o32 = u(3, 2, o31 + o22)
        o33 = u(3, 3, o32)
        o41 = u(4, 1, s3 + o31)
        o42 = u(4, 2, o41 + o32)
        o43 = u(4, 3, o42 + o33)
        o44 = u(4, 4, o43)
        cat = np.concatenate([o11, o22, o33, o44], axis=-1)
        merged = to_numpy(block.merge_conv(cat, training=False))
        expected = np.maximum(merged + x, 0.0)
        got = to_numpy(block(x, training=False))
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
        assert np.abs(got).max() > 0.1  # not a trivially small output

    def test_needs_projection(self):
        with self.assertRaisesRegex(ValueError, "downsample=True"):
            ResidualStepsBlock(8, strides=2, downsample=False).build(
                (None, 8, 8, 8)
            )
        with self.assertRaisesRegex(ValueError, "at least 3 input"):
            ResidualStepsBlock(8).build((None, 8, 8, 2))
        with self.assertRaisesRegex(ValueError, "positive"):
            ResidualStepsBlock(0)


class PoseRefineMachineTest(TestCase):
    def test_layer_basics(self):
        # 4 ConvBNAct (conv kernel + bias + BN) and the depthwise conv + BN.
        self.run_layer_test(
            PoseRefineMachine,
            {"channels": 5},
            _x(2, 12, 8, 5),
            (2, 12, 8, 5),
            expected_num_trainable_weights=4 * 4 + 4,
            expected_num_non_trainable_weights=5 * 2,
        )

    def test_formula(self):
        # f * (1 + alpha * beta) with both gates in [0.5, 1): the output
        # lies between 1.25 f and 2 f, elementwise.
        prm = PoseRefineMachine(3)
        x = _x(2, 10, 6, 3)
        y = to_numpy(prm(x, training=False))
        f = to_numpy(prm.conv(x, training=False))
        ratio = y[f > 1e-3] / f[f > 1e-3]
        assert ratio.min() >= 1.25 - 1e-5 and ratio.max() < 2.0
        # The spatial path is depthwise 9x9: one filter per channel.
        assert tuple(prm.spatial_depthwise.kernel.shape) == (9, 9, 3, 1)

    def test_validates(self):
        with self.assertRaisesRegex(ValueError, "expects 4 channels"):
            PoseRefineMachine(4)(_x(1, 8, 8, 3))
        with self.assertRaisesRegex(ValueError, "positive"):
            PoseRefineMachine(0)


def test_layers_serialize_by_name():
    for layer in (
        AlignedBilinearResize((4, 4)),
        ResidualStepsBlock(8),
        PoseRefineMachine(3),
    ):
        config = keras.saving.serialize_keras_object(layer)
        assert config["registered_name"].startswith("kerapose>")
