"""Associative Embedding hourglass blocks (Newell et al., NIPS 2017).

The official network has no residual units: every unit is a convolution
with a bias followed by a ReLU, with an optional BatchNorm *after* the ReLU
(off in the official configuration).
"""

from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.batch_norm import BatchNormalization
from kerapose.layers.conv2d import Conv2D
from kerapose.layers.conv_bn_act import TORCH_BN_EPSILON
from kerapose.layers.conv_bn_act import TORCH_BN_MOMENTUM
from kerapose.layers.upsample import upsample_nearest


@kerapose_export("kerapose.layers.ConvActBN")
class ConvActBN(layers.Layer):
    """Convolution with bias, an optional activation, then optional BN.

    The unit of the official Associative Embedding hourglass. Strided
    convolutions pad symmetrically by `kernel_size // 2`, as PyTorch does.

    Args:
        filters: int. Output channels.
        kernel_size: int. Square, odd kernel size. Defaults to `3`.
        strides: int. Defaults to `1`.
        activation: str or `None`. Defaults to `"relu"`.
        use_bn: bool. BatchNorm after the activation. Defaults to `False`.
        bn_epsilon: float. Defaults to `1e-5`.
        bn_momentum: float. Keras convention. Defaults to `0.9`.

    Example:
    ```python
    layer = kerapose.layers.ConvActBN(16, 7, strides=2)
    layer(np.zeros((1, 64, 32, 3), "float32")).shape  # (1, 32, 16, 16)
    ```
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        activation="relu",
        use_bn=False,
        bn_epsilon=TORCH_BN_EPSILON,
        bn_momentum=TORCH_BN_MOMENTUM,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(filters, bool) or int(filters) <= 0:
            raise ValueError(
                f"`filters` must be a positive int. Received: {filters!r}"
            )
        if int(kernel_size) % 2 != 1:
            raise ValueError(
                f"`kernel_size` must be odd. Received: {kernel_size!r}"
            )
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.activation = activation
        self.use_bn = bool(use_bn)
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self._pad = self.kernel_size // 2 if self.strides > 1 else 0
        self.conv = Conv2D(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding="valid" if self._pad else "same",
            dtype=self.dtype_policy,
            name="conv",
        )
        self.act = (
            layers.Activation(activation, dtype=self.dtype_policy, name="act")
            if activation
            else None
        )
        self.bn = None
        if self.use_bn:
            self.bn = BatchNormalization(
                epsilon=bn_epsilon,
                momentum=bn_momentum,
                dtype=self.dtype_policy,
                name="bn",
            )

    def _padded_shape(self, input_shape):
        if not self._pad:
            return tuple(input_shape)
        b, h, w, c = input_shape
        p = 2 * self._pad
        return (
            b,
            None if h is None else h + p,
            None if w is None else w + p,
            c,
        )

    def build(self, input_shape):
        padded = self._padded_shape(input_shape)
        self.conv.build(padded)
        if self.bn is not None:
            self.bn.build(self.conv.compute_output_shape(padded))

    def call(self, inputs, training=None):
        x = inputs
        if self._pad:
            p = self._pad
            x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
        x = self.conv(x)
        if self.act is not None:
            x = self.act(x)
        if self.bn is not None:
            x = self.bn(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(self._padded_shape(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "activation": self.activation,
                "use_bn": self.use_bn,
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config


@kerapose_export("kerapose.layers.HourglassModule")
class HourglassModule(layers.Layer):
    """Recursive hourglass of the official Associative Embedding network.

    `up1(x) + upsample(low3(low2(low1(maxpool(x)))))`, where `low2` is the
    next, smaller hourglass (or, at `depth == 1`, one conv unit). `low1`
    widens the features by `increase`; `low3` narrows them back. Every unit
    is a 3x3 `ConvActBN`; `low3` never has BN, as in the official code.

    The official constructor does not hand its `increase` to the inner
    levels, which use their default of 128; `inner_increase` reproduces
    that (128), or sets another value for every inner level.

    Args:
        depth: int. Number of pooling levels. The input height and width
            must be multiples of `2**depth`.
        filters: int. Width of the outermost level.
        increase: int. Channels added by this level's `low1`.
            Defaults to `128`.
        inner_increase: int. Channels added by each inner level.
            Defaults to `128`.
        use_bn: bool. BN after the ReLU of `up1`, `low1` and the innermost
            conv. Defaults to `False` (the official configuration).
        bn_epsilon: float. Defaults to `1e-5`.
        bn_momentum: float. Defaults to `0.9`.
    """

    def __init__(
        self,
        depth,
        filters,
        increase=128,
        inner_increase=128,
        use_bn=False,
        bn_epsilon=TORCH_BN_EPSILON,
        bn_momentum=TORCH_BN_MOMENTUM,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value, low in (
            ("depth", depth, 1),
            ("filters", filters, 1),
            ("increase", increase, 0),
            ("inner_increase", inner_increase, 0),
        ):
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ValueError(
                    f"`{name}` must be an int >= {low}. Received: {value!r}"
                )
        self.depth = int(depth)
        self.filters = int(filters)
        self.increase = int(increase)
        self.inner_increase = int(inner_increase)
        self.use_bn = bool(use_bn)
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        inner = self.filters + self.increase
        self.up1 = self._unit(self.filters, self.use_bn, "up1")
        self.low1 = self._unit(inner, self.use_bn, "low1")
        if self.depth > 1:
            self.low2 = HourglassModule(
                self.depth - 1,
                inner,
                increase=self.inner_increase,
                inner_increase=self.inner_increase,
                use_bn=self.use_bn,
                bn_epsilon=bn_epsilon,
                bn_momentum=bn_momentum,
                dtype=self.dtype_policy,
                name="low2",
            )
        else:
            self.low2 = self._unit(inner, self.use_bn, "low2")
        self.low3 = self._unit(self.filters, False, "low3")

    def _unit(self, filters, use_bn, name):
        return ConvActBN(
            filters,
            3,
            use_bn=use_bn,
            bn_epsilon=self.bn_epsilon,
            bn_momentum=self.bn_momentum,
            dtype=self.dtype_policy,
            name=name,
        )

    def _check_shape(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.filters:
            raise ValueError(
                f"HourglassModule '{self.name}' expects {self.filters} input "
                f"channels. Received shape {tuple(input_shape)}."
            )
        divisor = 2**self.depth
        for size in input_shape[1:3]:
            if size is not None and size % divisor:
                raise ValueError(
                    f"HourglassModule '{self.name}' (depth {self.depth}) "
                    f"needs height and width multiples of {divisor}. "
                    f"Received shape {tuple(input_shape)}."
                )

    def build(self, input_shape):
        self._check_shape(input_shape)
        b, h, w, _ = input_shape
        self.up1.build(input_shape)
        low = (b, None if h is None else h // 2, None if w is None else w // 2)
        self.low1.build((*low, self.filters))
        self.low2.build((*low, self.filters + self.increase))
        self.low3.build((*low, self.filters + self.increase))

    def call(self, inputs, training=None):
        up1 = self.up1(inputs, training=training)
        x = ops.max_pool(inputs, 2, strides=2, padding="valid")
        x = self.low1(x, training=training)
        x = self.low2(x, training=training)
        x = self.low3(x, training=training)
        return up1 + upsample_nearest(x, 2)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "depth": self.depth,
                "filters": self.filters,
                "increase": self.increase,
                "inner_increase": self.inner_increase,
                "use_bn": self.use_bn,
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config
