import numpy as np
import pytest

from kerapose.layers import BasicBlock
from kerapose.layers import Bottleneck
from kerapose.layers import ConvBNAct
from kerapose.layers import ExchangeUnit
from kerapose.layers import HRModule
from kerapose.layers import HRNetTransition
from kerapose.testing.test_case import TestCase
from kerapose.testing.test_case import to_numpy


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


class LayerTest(TestCase):
    def test_conv_bn_act(self):
        self.run_layer_test(
            ConvBNAct,
            {"filters": 4, "kernel_size": 3, "strides": 2},
            _x(2, 8, 6, 3),
            (2, 4, 3, 4),
            expected_num_trainable_weights=3,
            expected_num_non_trainable_weights=2,
        )

    def test_strided_conv_pads_symmetrically(self):
        # A centred 3x3 kernel of ones at stride 2 sums the 3x3 window around
        # each even pixel; 'same' padding would shift it by one pixel.
        layer = ConvBNAct(1, 3, strides=2, activation=None)
        layer.build((1, 4, 4, 1))
        layer.conv.kernel.assign(np.ones((3, 3, 1, 1), "float32"))
        layer.bn.moving_variance.assign(np.ones(1, "float32") - 1e-5)
        x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
        y = to_numpy(layer(x))[0, :, :, 0]
        padded = np.pad(x[0, :, :, 0], 1)
        expected = [
            [padded[r : r + 3, c : c + 3].sum() for c in (0, 2)] for r in (0, 2)
        ]
        np.testing.assert_allclose(y, expected, rtol=1e-5)

    def test_conv_bn_act_validates(self):
        with self.assertRaisesRegex(ValueError, "odd"):
            ConvBNAct(4, 2)
        with self.assertRaisesRegex(ValueError, "positive"):
            ConvBNAct(0)

    def test_basic_block(self):
        self.run_layer_test(
            BasicBlock,
            {"filters": 4},
            _x(2, 8, 6, 4),
            (2, 8, 6, 4),
            expected_num_trainable_weights=6,
            expected_num_non_trainable_weights=4,
        )

    def test_bottleneck_with_projection(self):
        layer = self.run_layer_test(
            Bottleneck,
            {"filters": 4},
            _x(2, 8, 6, 8),
            (2, 8, 6, 16),
            expected_num_trainable_weights=12,
            expected_num_non_trainable_weights=8,
        )
        assert layer.projection is not None

    def test_block_refuses_shape_change_without_projection(self):
        with self.assertRaisesRegex(ValueError, "downsample=True"):
            BasicBlock(8, downsample=False).build((1, 8, 8, 4))

    def test_transition_adds_branch(self):
        self.run_layer_test(
            HRNetTransition,
            {"in_channels": [16], "out_channels": [4, 8]},
            [_x(2, 8, 8, 16)],
            [(2, 8, 8, 4), (2, 4, 4, 8)],
        )

    def test_transition_keeps_equal_widths(self):
        layer = HRNetTransition([4, 8], [4, 8, 16])
        layer.build([(1, 8, 8, 4), (1, 4, 4, 8)])
        # Only the new branch has weights: a 3x3 s2 conv + BN.
        assert [v.path for v in layer.trainable_weights][0].endswith(
            "branch2_down0/conv/kernel"
        )
        assert len(layer.trainable_weights) == 3
        x = [_x(1, 8, 8, 4), _x(1, 4, 4, 8)]
        out = layer(x)
        self.assertAllClose(out[0], x[0])
        self.assertAllClose(out[1], x[1])

    def test_exchange_unit(self):
        self.run_layer_test(
            ExchangeUnit,
            {"channels": [4, 8, 16]},
            [_x(2, 8, 8, 4), _x(2, 4, 4, 8), _x(2, 2, 2, 16)],
            [(2, 8, 8, 4), (2, 4, 4, 8), (2, 2, 2, 16)],
        )

    def test_exchange_unit_fusion_rule(self):
        # With zero conv weights and unit BN every conv path outputs 0, so
        # each output is ReLU of its own branch: the identity term.
        unit = ExchangeUnit([2, 4])
        x = [_x(1, 4, 4, 2), _x(1, 2, 2, 4)]
        unit(x)
        for v in unit.trainable_weights:
            if v.path.endswith("kernel"):
                v.assign(np.zeros(v.shape, "float32"))
        out = unit(x)
        self.assertAllClose(out[0], np.maximum(x[0], 0), atol=1e-6)
        self.assertAllClose(out[1], np.maximum(x[1], 0), atol=1e-6)

    def test_exchange_unit_upsamples_nearest(self):
        unit = ExchangeUnit([1, 1], num_outputs=1)
        x = [np.zeros((1, 4, 4, 1), "float32"), _x(1, 2, 2, 1)]
        unit(x)
        unit.paths["0_1"][0].conv.kernel.assign(np.ones((1, 1, 1, 1)))
        bn = unit.paths["0_1"][0].bn
        bn.moving_variance.assign(np.ones(1) - 1e-5)
        out = to_numpy(unit(x)[0])[0, :, :, 0]
        expected = np.repeat(np.repeat(x[1][0, :, :, 0], 2, 0), 2, 1)
        np.testing.assert_allclose(out, np.maximum(expected, 0), rtol=1e-5)

    def test_exchange_unit_validates(self):
        with self.assertRaisesRegex(ValueError, "num_outputs"):
            ExchangeUnit([4, 8], num_outputs=3)
        with self.assertRaisesRegex(ValueError, "expects 2 branches"):
            ExchangeUnit([4, 8]).build([(1, 8, 8, 4)])
        with self.assertRaisesRegex(ValueError, "must have 8 channels"):
            ExchangeUnit([4, 8]).build([(1, 8, 8, 4), (1, 4, 4, 5)])

    def test_hr_module(self):
        self.run_layer_test(
            HRModule,
            {"channels": [4, 8], "num_blocks": 2},
            [_x(2, 8, 8, 4), _x(2, 4, 4, 8)],
            [(2, 8, 8, 4), (2, 4, 4, 8)],
        )

    def test_hr_module_single_scale_output(self):
        self.run_layer_test(
            HRModule,
            {"channels": [4, 8], "num_blocks": 1, "multi_scale_output": False},
            [_x(2, 8, 8, 4), _x(2, 4, 4, 8)],
            [(2, 8, 8, 4)],
        )

    def test_hr_module_validates_block(self):
        with pytest.raises(ValueError, match="basic"):
            HRModule([4], block="dense")
