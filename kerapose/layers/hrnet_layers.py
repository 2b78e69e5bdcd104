"""HRNet building blocks: transition, exchange unit and HR module.

Structure follows Sun et al., "Deep High-Resolution Representation Learning
for Human Pose Estimation" (CVPR 2019) and the official pose network.
"""

from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.conv_bn_act import TORCH_BN_EPSILON
from kerapose.layers.conv_bn_act import TORCH_BN_MOMENTUM
from kerapose.layers.conv_bn_act import conv_bn_act_of
from kerapose.layers.gaussian_upsampling import GaussianUpsampling
from kerapose.layers.residual_blocks import BasicBlock
from kerapose.layers.residual_blocks import Bottleneck
from kerapose.layers.upsample import upsample_nearest

BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
# How an exchange unit brings a lower branch up: HRNet's nearest
# neighbour, or OmniPose's transposed convs plus a fixed Gaussian.
UPSAMPLING = ("nearest", "gaussian")


class _MultiBranchLayer(layers.Layer):
    """Base for layers that map a list of branches to a list of branches.

    `separable=True` makes every conv a `SeparableConv` (OmniPose-Lite).
    """

    def __init__(
        self,
        bn_epsilon=TORCH_BN_EPSILON,
        bn_momentum=TORCH_BN_MOMENTUM,
        separable=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.separable = bool(separable)

    def _conv(
        self, filters, kernel_size, strides=1, activation="relu", name=None
    ):
        return conv_bn_act_of(
            self, filters, kernel_size, strides, activation, name
        )

    def _check_inputs(self, inputs, expected_channels):
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        if len(inputs) != len(expected_channels):
            raise ValueError(
                f"Layer '{self.name}' expects {len(expected_channels)} "
                f"branches, received {len(inputs)}."
            )
        for i, (x, c) in enumerate(zip(inputs, expected_channels)):
            if x[-1] is not None and x[-1] != c:
                raise ValueError(
                    f"Layer '{self.name}': branch {i} must have {c} "
                    f"channels, received shape {tuple(x)}."
                )
        return list(inputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
                "separable": self.separable,
            }
        )
        return config


@kerapose_export("kerapose.layers.HRNetTransition")
class HRNetTransition(_MultiBranchLayer):
    """Adapts the branches of one HRNet stage to the next.

    An existing branch whose width changes gets a 3x3 conv-BN-ReLU; one whose
    width stays the same passes through. Each new, lower-resolution branch is
    made from the last existing branch by stride-2 3x3 conv-BN-ReLU units.

    Args:
        in_channels: list of ints. Widths of the incoming branches.
        out_channels: list of ints. Widths of the outgoing branches (at least
            as many as incoming).
    """

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = [int(c) for c in in_channels]
        self.out_channels = [int(c) for c in out_channels]
        if len(self.out_channels) < len(self.in_channels):
            raise ValueError(
                "A transition cannot drop branches: "
                f"in_channels={in_channels}, out_channels={out_channels}."
            )
        self.paths = []
        n_in = len(self.in_channels)
        for i, c_out in enumerate(self.out_channels):
            if i < n_in:
                path = []
                if self.in_channels[i] != c_out:
                    path = [self._conv(c_out, 3, 1, "relu", f"branch{i}")]
            else:
                steps = i + 1 - n_in
                path = [
                    self._conv(
                        c_out if k == steps - 1 else self.in_channels[-1],
                        3,
                        2,
                        "relu",
                        f"branch{i}_down{k}",
                    )
                    for k in range(steps)
                ]
            self.paths.append(path)

    def _source(self, i):
        return min(i, len(self.in_channels) - 1)

    def build(self, input_shape):
        shapes = self._check_inputs(input_shape, self.in_channels)
        for i, path in enumerate(self.paths):
            shape = shapes[self._source(i)]
            for conv in path:
                conv.build(shape)
                shape = conv.compute_output_shape(shape)

    def call(self, inputs, training=None):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outputs = []
        for i, path in enumerate(self.paths):
            x = inputs[self._source(i)]
            for conv in path:
                x = conv(x, training=training)
            outputs.append(x)
        return outputs

    def compute_output_shape(self, input_shape):
        shapes = self._check_inputs(input_shape, self.in_channels)
        out = []
        for i, path in enumerate(self.paths):
            shape = shapes[self._source(i)]
            for conv in path:
                shape = conv.compute_output_shape(shape)
            out.append(shape)
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "in_channels": self.in_channels,
                "out_channels": self.out_channels,
            }
        )
        return config


@kerapose_export("kerapose.layers.ExchangeUnit")
class ExchangeUnit(_MultiBranchLayer):
    """HRNet repeated multi-scale fusion.

    Output branch `i` is `ReLU(sum_j f_ij(x_j))` with `f_ij` the identity for
    `j == i`; for `j > i` a 1x1 conv-BN followed by upsampling by `2^(j-i)`;
    for `j < i` a chain of `i-j` stride-2 3x3 conv-BN units, with ReLU after
    all but the last.

    Args:
        channels: list of ints. Width of each branch (highest resolution
            first).
        num_outputs: int. How many output branches to produce (the last HRNet
            module keeps only the highest resolution). Defaults to all.
        upsampling: str. `"nearest"` (HRNet) or `"gaussian"` (OmniPose:
            `GaussianUpsampling`, transposed convs and a fixed Gaussian).
            Defaults to `"nearest"`.
    """

    def __init__(
        self, channels, num_outputs=None, upsampling="nearest", **kwargs
    ):
        super().__init__(**kwargs)
        if upsampling not in UPSAMPLING:
            raise ValueError(
                f"`upsampling` must be one of {UPSAMPLING}. "
                f"Received: {upsampling!r}"
            )
        self.upsampling = upsampling
        self.channels = [int(c) for c in channels]
        n = len(self.channels)
        self.num_outputs = n if num_outputs is None else int(num_outputs)
        if not 1 <= self.num_outputs <= n:
            raise ValueError(
                f"`num_outputs` must be in [1, {n}]. Received: {num_outputs}"
            )
        self.paths = {}
        for i in range(self.num_outputs):
            for j in range(n):
                if j > i:
                    path = [
                        self._conv(self.channels[i], 1, 1, None, f"fuse{i}_{j}")
                    ]
                    if upsampling == "gaussian":
                        path.append(
                            GaussianUpsampling(
                                self.channels[i],
                                steps=j - i,
                                bn_epsilon=self.bn_epsilon,
                                bn_momentum=self.bn_momentum,
                                dtype=self.dtype_policy,
                                name=f"fuse{i}_{j}_up",
                            )
                        )
                    # Complete before assignment: Keras tracks the layers
                    # of a list when it is stored, not later appends.
                    self.paths[f"{i}_{j}"] = path
                elif j < i:
                    steps = i - j
                    self.paths[f"{i}_{j}"] = [
                        self._conv(
                            self.channels[i if k == steps - 1 else j],
                            3,
                            2,
                            None if k == steps - 1 else "relu",
                            f"fuse{i}_{j}_down{k}",
                        )
                        for k in range(steps)
                    ]

    def build(self, input_shape):
        shapes = self._check_inputs(input_shape, self.channels)
        for key, path in sorted(self.paths.items()):
            shape = shapes[int(key.split("_")[1])]
            for conv in path:
                conv.build(shape)
                shape = conv.compute_output_shape(shape)

    def _apply_path(self, i, j, x, training):
        for conv in self.paths[f"{i}_{j}"]:
            x = conv(x, training=training)
        if j > i and self.upsampling == "nearest":
            x = upsample_nearest(x, 2 ** (j - i))
        return x

    def call(self, inputs, training=None):
        outputs = []
        for i in range(self.num_outputs):
            y = None
            for j, x in enumerate(inputs):
                term = x if i == j else self._apply_path(i, j, x, training)
                y = term if y is None else y + term
            outputs.append(ops.relu(y))
        return outputs

    def compute_output_shape(self, input_shape):
        shapes = self._check_inputs(input_shape, self.channels)
        return [shapes[i] for i in range(self.num_outputs)]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "channels": self.channels,
                "num_outputs": self.num_outputs,
                "upsampling": self.upsampling,
            }
        )
        return config


@kerapose_export("kerapose.layers.HRModule")
class HRModule(_MultiBranchLayer):
    """Parallel residual branches followed by an exchange unit.

    Args:
        channels: list of ints. Width of each branch.
        num_blocks: int. Residual blocks per branch. Defaults to `4`.
        block: str. `"basic"` or `"bottleneck"`. Defaults to `"basic"`.
        multi_scale_output: bool. If `False`, only the highest-resolution
            branch is fused and returned. Defaults to `True`.
        upsampling: str. The exchange unit's upsampling, `"nearest"` or
            `"gaussian"`. Defaults to `"nearest"`.
    """

    def __init__(
        self,
        channels,
        num_blocks=4,
        block="basic",
        multi_scale_output=True,
        upsampling="nearest",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if block not in BLOCKS:
            raise ValueError(
                f"`block` must be one of {sorted(BLOCKS)}. Received: {block}"
            )
        self.channels = [int(c) for c in channels]
        self.num_blocks = int(num_blocks)
        self.block = block
        self.multi_scale_output = bool(multi_scale_output)
        self.upsampling = upsampling
        block_cls = BLOCKS[block]
        self.branches = [
            [
                block_cls(
                    c // block_cls.expansion,
                    bn_epsilon=self.bn_epsilon,
                    bn_momentum=self.bn_momentum,
                    separable=self.separable,
                    dtype=self.dtype_policy,
                    name=f"branch{b}_block{k}",
                )
                for k in range(self.num_blocks)
            ]
            for b, c in enumerate(self.channels)
        ]
        self.fuse = None
        if len(self.channels) > 1:
            self.fuse = ExchangeUnit(
                self.channels,
                num_outputs=None if self.multi_scale_output else 1,
                upsampling=upsampling,
                bn_epsilon=self.bn_epsilon,
                bn_momentum=self.bn_momentum,
                separable=self.separable,
                dtype=self.dtype_policy,
                name="fuse",
            )

    def build(self, input_shape):
        shapes = self._check_inputs(input_shape, self.channels)
        for blocks, shape in zip(self.branches, shapes):
            for blk in blocks:
                blk.build(shape)
                shape = blk.compute_output_shape(shape)
        if self.fuse is not None:
            self.fuse.build(shapes)

    def call(self, inputs, training=None):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outs = []
        for blocks, x in zip(self.branches, inputs):
            for blk in blocks:
                x = blk(x, training=training)
            outs.append(x)
        if self.fuse is None:
            return outs
        return self.fuse(outs, training=training)

    def compute_output_shape(self, input_shape):
        shapes = self._check_inputs(input_shape, self.channels)
        if self.fuse is None or self.multi_scale_output:
            return shapes
        return shapes[:1]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "channels": self.channels,
                "num_blocks": self.num_blocks,
                "block": self.block,
                "multi_scale_output": self.multi_scale_output,
                "upsampling": self.upsampling,
            }
        )
        return config
