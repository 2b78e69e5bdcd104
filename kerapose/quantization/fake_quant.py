"""Fake quantization of kernels and activations, in `keras.ops` only.

Both use `keras.quantizers.fake_quant_with_min_max_vars` (straight-through
gradient on every backend); on TensorFlow it lowers to the fake-quant ops
the TFLite converter reads its int8 ranges from.
"""

import keras
from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export


def fake_quant_kernel(kernel, channel_axis=-1):
    """Per-output-channel symmetric int8, as TFLite quantizes kernels.

    The range is `[-max|w|, max|w|]` per channel on 255 levels (narrow
    range), so zero is exact and the converter's own weight quantization
    reproduces these values.

    Args:
        kernel: tensor of any rank.
        channel_axis: int, or `None` for one range for the whole kernel.
            The output-channel axis. Defaults to `-1`.
    """
    rank = len(kernel.shape)
    axis = None if channel_axis is None else channel_axis % rank
    reduce = tuple(i for i in range(rank) if i != axis)
    bound = ops.maximum(ops.max(ops.abs(kernel), axis=reduce), 1e-8)
    bound = ops.stop_gradient(bound)
    return keras.quantizers.fake_quant_with_min_max_vars(
        kernel, -bound, bound, num_bits=8, narrow_range=True, axis=axis
    )


def fake_quant_depthwise_kernel(kernel):
    """Depthwise kernels (kh, kw, C, M): TFLite's channels are C * M."""
    kh, kw, c, m = kernel.shape
    flat = ops.reshape(kernel, (kh, kw, c * m))
    return ops.reshape(fake_quant_kernel(flat, -1), (kh, kw, c, m))


@kerapose_export("kerapose.quantization.ActivationQuantizer")
class ActivationQuantizer(layers.Layer):
    """Per-tensor int8 fake quantization with a learnt (EMA) range.

    Training updates the range with an exponential moving average of the
    batch minimum and maximum; inference uses the stored range. Before
    the first use the range is set by `calibrate` (a running min/max over
    a few batches), so the first training step starts from a real range.
    The range always contains zero, as TFLite's int8 zero point requires.

    Args:
        momentum: float. EMA momentum of the range. Defaults to `0.99`.
    """

    def __init__(self, momentum=0.99, **kwargs):
        super().__init__(**kwargs)
        self.momentum = float(momentum)
        self.calibrating = False

    def build(self, input_shape):
        self.range_min = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="range_min"
        )
        self.range_max = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="range_max"
        )

    def call(self, inputs, training=None):
        x = ops.cast(inputs, "float32")
        batch_min = ops.minimum(ops.min(x), 0.0)
        batch_max = ops.maximum(ops.max(x), 0.0)
        if self.calibrating:
            # Plain running min / max, as the converter's calibration.
            self.range_min.assign(ops.minimum(self.range_min, batch_min))
            self.range_max.assign(ops.maximum(self.range_max, batch_max))
            return inputs
        low, high = self.range_min, self.range_max
        if training:
            m = self.momentum
            low = m * low + (1.0 - m) * batch_min
            high = m * high + (1.0 - m) * batch_max
            self.range_min.assign(low)
            self.range_max.assign(high)
        low = ops.stop_gradient(ops.convert_to_tensor(low))
        high = ops.stop_gradient(ops.maximum(high, low + 1e-6))
        out = keras.quantizers.fake_quant_with_min_max_vars(
            x, low, high, num_bits=8
        )
        return ops.cast(out, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["momentum"] = self.momentum
        return config
