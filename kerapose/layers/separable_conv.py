import keras
from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.conv2d import Conv2D
from kerapose.layers.depthwise_conv import DepthwiseConv


@kerapose_export("kerapose.layers.SeparableConv")
class SeparableConv(layers.Layer):
    """Depthwise conv, ReLU, then a 1x1 pointwise conv (no biases).

    The separable convolution of OmniPose (its WASPv2 atrous modules, and
    every backbone conv of OmniPose-Lite). Unlike
    `keras.layers.SeparableConv2D` it applies a ReLU between the depthwise
    and the pointwise step, as the official network does. Padding is
    `"same"` at stride 1; callers pad strided convs themselves (see
    `ConvBNAct`) and pass `padding="valid"`.

    Args:
        filters: int. Output channels.
        kernel_size: int. Depthwise kernel size. Defaults to `3`.
        strides: int. Depthwise stride. Defaults to `1`.
        dilation_rate: int. Depthwise dilation. Defaults to `1`.
        padding: str. `"same"` or `"valid"`. Defaults to `"same"`.
        kernel_initializer: initializer of both kernels. Defaults to
            `"he_normal"` (the official WASPv2 init).
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        dilation_rate=1,
        padding="same",
        kernel_initializer="he_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.dilation_rate = int(dilation_rate)
        self.padding = padding
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.depthwise = DepthwiseConv(
            self.kernel_size,
            strides=self.strides,
            padding=padding,
            dilation_rate=self.dilation_rate,
            use_bias=False,
            depthwise_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="depthwise",
        )
        self.pointwise = Conv2D(
            self.filters,
            1,
            use_bias=False,
            # A copy: one unseeded instance would draw the same values twice.
            kernel_initializer=keras.initializers.deserialize(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            dtype=self.dtype_policy,
            name="pointwise",
        )

    def build(self, input_shape):
        self.depthwise.build(input_shape)
        self.pointwise.build(self.depthwise.compute_output_shape(input_shape))

    def call(self, inputs):
        return self.pointwise(ops.relu(self.depthwise(inputs)))

    def compute_output_shape(self, input_shape):
        shape = self.depthwise.compute_output_shape(input_shape)
        return self.pointwise.compute_output_shape(shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "dilation_rate": self.dilation_rate,
                "padding": self.padding,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
