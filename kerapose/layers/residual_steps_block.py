from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.conv_bn_act import TORCH_BN_EPSILON
from kerapose.layers.conv_bn_act import TORCH_BN_MOMENTUM
from kerapose.layers.conv_bn_act import ConvBNAct

# The official RSN derives each branch's width from the block's *input*
# width as `in_channels * 26 // 64`, with a literal 64 (not the stem width);
# MMPose calls the 26 `expand_times` and makes it configurable.
BRANCH_NUMERATOR = 26
BRANCH_DENOMINATOR = 64
NUM_BRANCHES = 4


@kerapose_export("kerapose.layers.ResidualStepsBlock")
class ResidualStepsBlock(layers.Layer):
    """Residual Steps Block (RSB) of RSN, with intra-level feature fusion.

    Implements the block of [Learning Delicate Local Representations for
    Multi-Person Pose Estimation](https://arxiv.org/abs/2003.04030) (Cai et al.,
    ECCV 2020) as the official code builds it. A 1x1 conv (carrying the stride)
    widens the input to four branches of `in_channels * expand_times // 64`
    channels (26 in the official code). Branch b (1-4) runs b 3x3 conv-BN-ReLU
    steps; the first step adds the previous branch's first step, and step k adds
    step k of the previous branch when that exists (dense element-wise sums
    between neighbouring branches). The last step of every branch is
    concatenated, mapped by a 1x1 conv-BN, added to the shortcut, and ReLU'd.

    Every conv has a bias by default (the official RSN convs do, before
    their BN; MMPose's do not, `use_bias=False`).
    Layer names: `split_conv`, `branch{b}_step{k}` (1-based, as the official
    `conv_bn_relu2_{b}_{k}`), `merge_conv`, `downsample`.

    Args:
        filters: int. Output channels are `filters * expansion`.
        strides: int. Stride of the 1x1 split conv and of the projection.
            Defaults to `1`.
        expansion: int. `1` for the official RSN-18 / MMPose RSN-50 block,
            `4` for the RSN-50 file in the official repository's history.
            Defaults to `1`.
        downsample: bool or `None`. Whether the shortcut is a 1x1 conv-BN
            projection. `None` adds one when the shape changes. Defaults to
            `None`.
        expand_times: int. Branch width = `in_channels * expand_times //
            64`. Defaults to `26` (the official value).
        use_bias: bool. Whether the convs before each BN have a bias.
            Defaults to `True` (the official network).
        bn_epsilon: float. Defaults to `1e-5`.
        bn_momentum: float. Defaults to `0.9`.

    Example:
    ```python
    block = kerapose.layers.ResidualStepsBlock(16, strides=2)
    block(np.zeros((1, 32, 24, 8), "float32")).shape  # (1, 16, 12, 16)
    ```
    """

    def __init__(
        self,
        filters,
        strides=1,
        expansion=1,
        downsample=None,
        expand_times=BRANCH_NUMERATOR,
        use_bias=True,
        bn_epsilon=TORCH_BN_EPSILON,
        bn_momentum=TORCH_BN_MOMENTUM,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if min(int(filters), int(expansion), int(expand_times)) <= 0:
            raise ValueError(
                "`filters`, `expansion` and `expand_times` must be positive "
                f"ints. Received: filters={filters}, expansion={expansion}, "
                f"expand_times={expand_times}"
            )
        self.filters = int(filters)
        self.strides = int(strides)
        self.expansion = int(expansion)
        self.downsample = downsample
        self.expand_times = int(expand_times)
        self.use_bias = bool(use_bias)
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.output_channels = self.filters * self.expansion
        self.projection = None

    def _conv(
        self, filters, kernel_size, strides=1, activation="relu", name=""
    ):
        return ConvBNAct(
            filters,
            kernel_size,
            strides=strides,
            activation=activation,
            use_bias=self.use_bias,
            bn_epsilon=self.bn_epsilon,
            bn_momentum=self.bn_momentum,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        in_channels = input_shape[-1]
        self.branch_channels = in_channels * self.expand_times
        self.branch_channels //= BRANCH_DENOMINATOR
        if self.branch_channels <= 0:
            raise ValueError(
                f"ResidualStepsBlock '{self.name}' needs at least "
                f"{-(-BRANCH_DENOMINATOR // self.expand_times)} input "
                f"channels (branch width = in_channels * "
                f"{self.expand_times} // 64). Received input shape "
                f"{tuple(input_shape)}; give it more input channels or a "
                "larger `expand_times`."
            )
        needs_projection = (
            self.strides != 1 or in_channels != self.output_channels
        )
        use_projection = (
            needs_projection if self.downsample is None else self.downsample
        )
        if needs_projection and not use_projection:
            raise ValueError(
                f"ResidualStepsBlock '{self.name}' maps {in_channels} "
                f"channels to {self.output_channels} with stride "
                f"{self.strides}, so it needs `downsample=True`."
            )
        c = self.branch_channels
        self.split_conv = self._conv(
            NUM_BRANCHES * c, 1, self.strides, name="split_conv"
        )
        self.split_conv.build(input_shape)
        inner = self.split_conv.compute_output_shape(input_shape)
        step_shape = (*inner[:-1], c)
        self.steps = []
        for b in range(1, NUM_BRANCHES + 1):
            branch = []
            for k in range(1, b + 1):
                step = self._conv(c, 3, name=f"branch{b}_step{k}")
                step.build(step_shape)
                branch.append(step)
            self.steps.append(branch)
        self.merge_conv = self._conv(
            self.output_channels, 1, activation=None, name="merge_conv"
        )
        self.merge_conv.build(inner)
        if use_projection:
            self.projection = self._conv(
                self.output_channels,
                1,
                self.strides,
                activation=None,
                name="downsample",
            )
            self.projection.build(input_shape)

    def call(self, inputs, training=None):
        c = self.branch_channels
        x = self.split_conv(inputs, training=training)
        splits = [x[..., i * c : (i + 1) * c] for i in range(NUM_BRANCHES)]
        previous = []  # step outputs of the previous branch
        ends = []
        for b, branch in enumerate(self.steps):
            outputs = []
            for k, step in enumerate(branch):
                y = splits[b] if k == 0 else outputs[-1]
                if k < len(previous):
                    y = y + previous[k]
                outputs.append(step(y, training=training))
            ends.append(outputs[-1])
            previous = outputs
        x = self.merge_conv(ops.concatenate(ends, axis=-1), training=training)
        shortcut = inputs
        if self.projection is not None:
            shortcut = self.projection(inputs, training=training)
        return ops.relu(x + shortcut)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        s = self.strides
        return (
            b,
            None if h is None else (h - 1) // s + 1,
            None if w is None else (w - 1) // s + 1,
            self.output_channels,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "strides": self.strides,
                "expansion": self.expansion,
                "downsample": self.downsample,
                "expand_times": self.expand_times,
                "use_bias": self.use_bias,
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config
