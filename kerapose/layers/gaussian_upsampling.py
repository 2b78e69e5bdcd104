import numpy as np
from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.batch_norm import BatchNormalization
from kerapose.layers.conv_bn_act import TORCH_BN_EPSILON
from kerapose.layers.conv_bn_act import TORCH_BN_MOMENTUM
from kerapose.layers.conv_bn_act import official_conv_initializer
from kerapose.layers.depthwise_conv import DepthwiseConv


def gaussian_kernel(size=3, sigma=3.0):
    """A normalised 2D Gaussian (size, size) centred on the middle pixel."""
    offsets = np.arange(size, dtype="float64") - (size - 1) / 2
    squared = offsets[:, None] ** 2 + offsets[None, :] ** 2
    kernel = np.exp(-squared / (2 * sigma**2))
    return (kernel / kernel.sum()).astype("float32")


@kerapose_export("kerapose.layers.GaussianUpsampling")
class GaussianUpsampling(layers.Layer):
    """Learned x2 upsampling steps followed by a fixed Gaussian filter.

    OmniPose's Gaussian heatmap modulation: each step is a 3x3 stride-2
    transposed conv, BN and ReLU, and the result is smoothed by a frozen
    depthwise 3x3 Gaussian, which lowers the quantisation error of
    upsampling compared with nearest-neighbour interpolation. The filter is
    a non-trainable weight (official checkpoints store it), initialised to
    the official Gaussian.

    Each transposed conv matches PyTorch's `ConvTranspose2d(3, stride=2,
    padding=1, output_padding=1)`: a `"valid"` transposed conv (2n+1
    outputs) without its first row and column.

    Args:
        filters: int. Output channels of every step.
        steps: int. Number of x2 steps (output is `2**steps` larger).
        sigma: float. Gaussian standard deviation. Defaults to `3.0`.
        bn_epsilon: float. Defaults to `1e-5`.
        bn_momentum: float. Defaults to `0.9`.

    Example:
    ```python
    layer = kerapose.layers.GaussianUpsampling(8, steps=2)
    layer(np.zeros((1, 6, 4, 16), "float32")).shape  # (1, 24, 16, 8)
    ```
    """

    kernel_size = 3

    def __init__(
        self,
        filters,
        steps=1,
        sigma=3.0,
        bn_epsilon=TORCH_BN_EPSILON,
        bn_momentum=TORCH_BN_MOMENTUM,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(steps) < 1:
            raise ValueError(f"`steps` must be >= 1. Received: {steps}")
        self.filters = int(filters)
        self.steps = int(steps)
        self.sigma = float(sigma)
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.deconvs = []
        self.norms = []
        for k in range(self.steps):
            self.deconvs.append(
                layers.Conv2DTranspose(
                    self.filters,
                    self.kernel_size,
                    strides=2,
                    padding="valid",
                    use_bias=False,
                    kernel_initializer=official_conv_initializer(),
                    dtype=self.dtype_policy,
                    name=f"deconv{k}",
                )
            )
            self.norms.append(
                BatchNormalization(
                    epsilon=bn_epsilon,
                    momentum=bn_momentum,
                    dtype=self.dtype_policy,
                    name=f"bn{k}",
                )
            )
        self.gaussian = DepthwiseConv(
            self.kernel_size,
            padding="same",
            use_bias=False,
            trainable=False,
            dtype=self.dtype_policy,
            name="gaussian",
        )

    def _step_shape(self, shape):
        b, h, w, _ = shape
        return (
            b,
            None if h is None else 2 * h,
            None if w is None else 2 * w,
            self.filters,
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for deconv, norm in zip(self.deconvs, self.norms):
            deconv.build(shape)
            shape = self._step_shape(shape)
            norm.build(shape)
        self.gaussian.build(shape)
        kernel = gaussian_kernel(self.kernel_size, self.sigma)
        self.gaussian.kernel.assign(
            np.tile(kernel[:, :, None, None], (1, 1, self.filters, 1))
        )

    def call(self, inputs, training=None):
        x = inputs
        for deconv, norm in zip(self.deconvs, self.norms):
            if training:
                x = ops.relu(norm(deconv(x)[:, 1:, 1:, :], training=True))
            else:
                # Same values: inference BN is per-channel affine. Slicing
                # after it lets converters fold BN into the deconv.
                x = ops.relu(norm(deconv(x), training=False))[:, 1:, 1:, :]
        return self.gaussian(x)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for _ in range(self.steps):
            shape = self._step_shape(shape)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "steps": self.steps,
                "sigma": self.sigma,
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config
