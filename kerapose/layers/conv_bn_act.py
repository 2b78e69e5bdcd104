import keras
from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.batch_norm import BatchNormalization
from kerapose.layers.conv2d import Conv2D
from kerapose.layers.depthwise_conv import DepthwiseConv
from kerapose.layers.separable_conv import SeparableConv

# PyTorch BatchNorm2d defaults, used by HRNet, OmniPose and RSN. Keras's own
# defaults (eps 1e-3, momentum 0.99) would change the outputs of converted
# checkpoints.
TORCH_BN_EPSILON = 1e-5
TORCH_BN_MOMENTUM = 0.9


def official_conv_initializer():
    """Normal(0, 0.001), the HRNet / OmniPose official conv init.

    With BatchNorm after every conv the scale hardly matters inside the
    network, but a heatmap head initialised at Keras's default Glorot scale
    starts with outputs of std ~1; MSE training then drives the features to
    zero and stalls at the "predict no keypoints" plateau.
    """
    return keras.initializers.RandomNormal(stddev=0.001)


@kerapose_export("kerapose.layers.ConvBNAct")
class ConvBNAct(layers.Layer):
    """Convolution, batch normalisation and an optional activation.

    Strided convolutions pad symmetrically by `kernel_size // 2` on every
    side, as PyTorch does; Keras `"same"` padding pads only bottom/right when
    the stride is 2 and gives different numbers for ported weights.

    Args:
        filters: int. Output channels.
        kernel_size: int. Square kernel size (odd). Defaults to `3`.
        strides: int. Defaults to `1`.
        activation: str or `None`. Applied after batch norm. Defaults to
            `"relu"`.
        use_bias: bool. Defaults to `False`.
        bn_epsilon: float. Defaults to `1e-5`.
        bn_momentum: float. Keras convention (`1 - torch momentum`).
            Defaults to `0.9`.
        kernel_initializer: initializer for the conv kernel. Defaults to
            normal with std 0.001 (the official HRNet init), or He normal
            when `separable`.
        dilation_rate: int. Defaults to `1`.
        separable: bool. Use a `SeparableConv` (depthwise, ReLU, pointwise)
            in place of the standard conv, as OmniPose-Lite does. Defaults
            to `False`.
        depthwise: bool. Use a depthwise conv (one filter per channel,
            `filters` must equal the input channels), as YOLO-Pose's
            keypoint head does. Defaults to `False`.

    Example:
    ```python
    layer = kerapose.layers.ConvBNAct(16, 3, strides=2)
    layer(np.zeros((1, 64, 48, 3), "float32")).shape  # (1, 32, 24, 16)
    ```
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        activation="relu",
        use_bias=False,
        bn_epsilon=TORCH_BN_EPSILON,
        bn_momentum=TORCH_BN_MOMENTUM,
        kernel_initializer=None,
        dilation_rate=1,
        separable=False,
        depthwise=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(filters) <= 0:
            raise ValueError(
                f"`filters` must be a positive int. Received: {filters}"
            )
        if kernel_size % 2 != 1:
            raise ValueError(
                f"`kernel_size` must be odd. Received: {kernel_size}"
            )
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.activation = activation
        self.use_bias = use_bias
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.dilation_rate = int(dilation_rate)
        self.separable = bool(separable)
        self.depthwise = bool(depthwise)
        if self.separable and use_bias:
            raise ValueError("A separable ConvBNAct has no conv bias.")
        if self.separable and self.depthwise:
            raise ValueError(
                "A ConvBNAct is either `separable` or `depthwise`, not both."
            )
        default_init = "he_normal" if separable else official_conv_initializer()
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or default_init
        )
        self._pad = self.kernel_size // 2 if self.strides > 1 else 0
        conv_kwargs = {
            "strides": self.strides,
            "padding": "valid" if self._pad else "same",
            "dilation_rate": self.dilation_rate,
            "kernel_initializer": self.kernel_initializer,
            "dtype": self.dtype_policy,
            "name": "conv",
        }
        if self.separable:
            self.conv = SeparableConv(
                self.filters, self.kernel_size, **conv_kwargs
            )
        elif self.depthwise:
            conv_kwargs["depthwise_initializer"] = conv_kwargs.pop(
                "kernel_initializer"
            )
            self.conv = DepthwiseConv(
                self.kernel_size, use_bias=use_bias, **conv_kwargs
            )
        else:
            self.conv = Conv2D(
                self.filters,
                self.kernel_size,
                use_bias=use_bias,
                **conv_kwargs,
            )
        self.bn = BatchNormalization(
            epsilon=bn_epsilon,
            momentum=bn_momentum,
            dtype=self.dtype_policy,
            name="bn",
        )
        self.act = (
            layers.Activation(activation, dtype=self.dtype_policy, name="act")
            if activation
            else None
        )

    def _padded_shape(self, input_shape):
        if not self._pad:
            return input_shape
        b, h, w, c = input_shape
        p = 2 * self._pad
        return (
            b,
            None if h is None else h + p,
            None if w is None else w + p,
            c,
        )

    def build(self, input_shape):
        if self.depthwise and input_shape[-1] != self.filters:
            raise ValueError(
                f"A depthwise ConvBNAct keeps the channel count: it has "
                f"filters={self.filters} but receives {input_shape[-1]} "
                "channels. Set `filters` to the input channels."
            )
        padded = self._padded_shape(input_shape)
        self.conv.build(padded)
        self.bn.build(self.conv.compute_output_shape(padded))

    def call(self, inputs, training=None):
        x = inputs
        if self._pad:
            p = self._pad
            x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
        x = self.bn(self.conv(x), training=training)
        return self.act(x) if self.act is not None else x

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
                "use_bias": self.use_bias,
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "dilation_rate": self.dilation_rate,
                "separable": self.separable,
            }
        )
        if self.depthwise:  # absent otherwise: older configs stay as saved
            config["depthwise"] = True
        return config


def conv_bn_act_of(
    owner, filters, kernel_size, strides=1, activation="relu", name=None
):
    """A `ConvBNAct` sharing `owner`'s BN settings, conv type and dtype."""
    return ConvBNAct(
        filters,
        kernel_size,
        strides=strides,
        activation=activation,
        bn_epsilon=owner.bn_epsilon,
        bn_momentum=owner.bn_momentum,
        separable=getattr(owner, "separable", False),
        dtype=owner.dtype_policy,
        name=name,
    )
