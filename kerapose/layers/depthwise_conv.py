import keras
from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.conv2d import channels_last_conv


@kerapose_export("kerapose.layers.DepthwiseConv")
class DepthwiseConv(layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` that XLA on CPU runs fast.

    Same weights, names and outputs as the Keras layer. For inference on
    JAX it computes the convolution as a sum of `kh * kw` shifted,
    per-channel scaled copies of the input, which XLA fuses into one loop;
    XLA's own grouped convolution is several times slower on CPU
    (BENCHMARKS.md, "kerapose vs native PyTorch eager"). In training it
    runs the grouped convolution: the shifted sum's backward pass (pads
    and slices) makes XLA's whole-step program about 3x slower
    (OmniPose-Lite, BENCHMARKS.md "Where training-step time goes"). Other
    backends call their depthwise kernel (PyTorch without layout copies,
    `channels_last_conv`). Only `depth_multiplier=1` and channels-last take
    the shifted-sum path.
    """

    def call(self, inputs, training=None):
        if self.data_format != "channels_last":
            return super().call(inputs)
        if (
            training
            or keras.backend.backend() != "jax"
            or self.depth_multiplier != 1
        ):
            x = channels_last_conv(
                ops.depthwise_conv,
                inputs,
                self.data_format,
                kernel=self.kernel,
                strides=self.strides,
                padding=self.padding,
                dilation_rate=self.dilation_rate,
            )
        else:
            x = _shifted_sum(
                inputs,
                self.kernel,
                self.strides,
                self.padding,
                self.dilation_rate,
            )
        if self.use_bias:
            x = x + self.bias
        return self.activation(x) if self.activation is not None else x


def _same_padding(size, kernel, stride, dilation):
    """TensorFlow's "same" padding (before, after) of one axis."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _shifted_sum(x, kernel, strides, padding, dilation_rate):
    kh, kw = kernel.shape[0], kernel.shape[1]
    sh, sw = strides
    dh, dw = dilation_rate
    if padding == "same":
        ph = _same_padding(x.shape[1], kh, sh, dh)
        pw = _same_padding(x.shape[2], kw, sw, dw)
        x = ops.pad(x, [[0, 0], list(ph), list(pw), [0, 0]])
    out_h = (x.shape[1] - (kh - 1) * dh - 1) // sh + 1
    out_w = (x.shape[2] - (kw - 1) * dw - 1) // sw + 1
    total = None
    for i in range(kh):
        for j in range(kw):
            window = x[
                :,
                i * dh : i * dh + (out_h - 1) * sh + 1 : sh,
                j * dw : j * dw + (out_w - 1) * sw + 1 : sw,
                :,
            ]
            term = window * kernel[i, j, :, 0]
            total = term if total is None else total + term
    return total
