from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.conv_bn_act import TORCH_BN_EPSILON
from kerapose.layers.conv_bn_act import TORCH_BN_MOMENTUM
from kerapose.layers.conv_bn_act import conv_bn_act_of


class _ResidualBlock(layers.Layer):
    """Shared mechanics: a conv chain, an optional projection, sum, ReLU."""

    expansion = 1

    def __init__(
        self,
        filters,
        strides=1,
        downsample=None,
        bn_epsilon=TORCH_BN_EPSILON,
        bn_momentum=TORCH_BN_MOMENTUM,
        separable=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.separable = bool(separable)
        self.filters = int(filters)
        self.strides = int(strides)
        self.downsample = downsample
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.output_channels = self.filters * self.expansion
        self.convs = self._make_convs()
        self.projection = None

    def _conv(
        self, filters, kernel_size, strides=1, activation="relu", name=None
    ):
        return conv_bn_act_of(
            self, filters, kernel_size, strides, activation, name
        )

    def build(self, input_shape):
        in_channels = input_shape[-1]
        needs_projection = (
            self.strides != 1 or in_channels != self.output_channels
        )
        use_projection = (
            needs_projection if self.downsample is None else self.downsample
        )
        if needs_projection and not use_projection:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' maps {in_channels} "
                f"channels to {self.output_channels} with stride "
                f"{self.strides}, so it needs `downsample=True`."
            )
        if use_projection:
            self.projection = self._conv(
                self.output_channels,
                1,
                strides=self.strides,
                activation=None,
                name="downsample",
            )
            self.projection.build(input_shape)
        shape = input_shape
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)

    def call(self, inputs, training=None):
        x = inputs
        for conv in self.convs:
            x = conv(x, training=training)
        shortcut = inputs
        if self.projection is not None:
            shortcut = self.projection(inputs, training=training)
        return ops.relu(x + shortcut)

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for conv in self.convs:
            shape = conv.compute_output_shape(shape)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "strides": self.strides,
                "downsample": self.downsample,
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
                "separable": self.separable,
            }
        )
        return config


@kerapose_export("kerapose.layers.BasicBlock")
class BasicBlock(_ResidualBlock):
    """Two 3x3 conv-BN units with a residual connection (ResNet basic block).

    Args:
        filters: int. Output channels.
        strides: int. Stride of the first conv. Defaults to `1`.
        downsample: bool or `None`. Whether the shortcut is a 1x1 conv-BN
            projection. `None` adds one when the shape changes. Defaults to
            `None`.
        bn_epsilon: float. Defaults to `1e-5`.
        bn_momentum: float. Defaults to `0.9`.
        separable: bool. Separable convs throughout (OmniPose-Lite).
            Defaults to `False`.
    """

    expansion = 1

    def _make_convs(self):
        return [
            self._conv(self.filters, 3, self.strides, name="conv1"),
            self._conv(self.filters, 3, activation=None, name="conv2"),
        ]


@kerapose_export("kerapose.layers.Bottleneck")
class Bottleneck(_ResidualBlock):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a residual connection.

    Args:
        filters: int. Width of the inner convs; the output has
            `4 * filters` channels.
        strides: int. Stride of the 3x3 conv. Defaults to `1`.
        downsample: bool or `None`. Whether the shortcut is a 1x1 conv-BN
            projection. `None` adds one when the shape changes. Defaults to
            `None`.
        bn_epsilon: float. Defaults to `1e-5`.
        bn_momentum: float. Defaults to `0.9`.
        separable: bool. Separable convs throughout (OmniPose-Lite).
            Defaults to `False`.
    """

    expansion = 4

    def _make_convs(self):
        return [
            self._conv(self.filters, 1, name="conv1"),
            self._conv(self.filters, 3, self.strides, name="conv2"),
            self._conv(self.output_channels, 1, activation=None, name="conv3"),
        ]
