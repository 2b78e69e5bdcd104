import keras
from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export


def channels_last_conv(conv_op, inputs, data_format, **kwargs):
    """`conv_op(inputs, data_format=data_format, **kwargs)`, without the
    PyTorch backend's layout copies.

    For an NHWC input Keras's PyTorch convolution copies the input to NCHW
    and then once more to channels-last memory (the layout PyTorch's CPU
    kernels take), and the backward pass copies the gradient twice again.
    A transposed view of an NHWC tensor already is NCHW in channels-last
    memory, so it is handed to the op as channels-first: no copy either
    way (BENCHMARKS.md, "Where training-step time goes"). Other backends
    and layouts call the op unchanged.

    Args:
        conv_op: `keras.ops.conv` or `keras.ops.depthwise_conv`.
        inputs: 4-D tensor.
        data_format: the layer's data format.
        **kwargs: the op's other arguments (kernel, strides, ...).
    """
    if (
        keras.backend.backend() != "torch"
        or data_format != "channels_last"
        or len(inputs.shape) != 4
    ):
        return conv_op(inputs, data_format=data_format, **kwargs)
    outputs = conv_op(
        ops.transpose(inputs, (0, 3, 1, 2)),
        data_format="channels_first",
        **kwargs,
    )
    return ops.transpose(outputs, (0, 2, 3, 1))


@kerapose_export("kerapose.layers.Conv2D")
class Conv2D(layers.Conv2D):
    """`keras.layers.Conv2D` that the PyTorch backend runs without layout
    copies (`channels_last_conv`). Same weights, names and outputs."""

    def convolution_op(self, inputs, kernel):
        return channels_last_conv(
            ops.conv,
            inputs,
            self.data_format,
            kernel=kernel,
            strides=list(self.strides),
            padding=self.padding,
            dilation_rate=self.dilation_rate,
        )
