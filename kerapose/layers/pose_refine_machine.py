from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.batch_norm import BatchNormalization
from kerapose.layers.conv_bn_act import TORCH_BN_EPSILON
from kerapose.layers.conv_bn_act import TORCH_BN_MOMENTUM
from kerapose.layers.conv_bn_act import ConvBNAct
from kerapose.layers.depthwise_conv import DepthwiseConv

SPATIAL_KERNEL = 9


@kerapose_export("kerapose.layers.PoseRefineMachine")
class PoseRefineMachine(layers.Layer):
    """Pose Refine Machine (PRM): attention that refines the last heatmaps.

    From RSN (Cai et al., ECCV 2020), matching the official `PRM` module.
    A 3x3 conv-BN-ReLU gives `f`; a channel path (global average pool, two
    1x1 conv-BN-ReLU, sigmoid) gives `alpha` (B, 1, 1, C); a spatial path
    (1x1 conv-BN-ReLU, 9x9 depthwise conv-BN-ReLU, sigmoid) gives `beta`
    (B, H, W, C). The output is `f * (1 + alpha * beta)`. Both sigmoids
    follow a ReLU, as in the official module, so the gates lie in
    [0.5, 1). Every conv has a bias.

    Layer names: `conv`, `channel_conv1`, `channel_conv2`, `spatial_conv`,
    `spatial_depthwise` (+ `spatial_depthwise_bn`).

    Args:
        channels: int. Input and output channels (the keypoint count when
            PRM refines heatmaps).
        bn_epsilon: float. Defaults to `1e-5`.
        bn_momentum: float. Defaults to `0.9`.

    Example:
    ```python
    prm = kerapose.layers.PoseRefineMachine(17)
    prm(np.zeros((1, 64, 48, 17), "float32")).shape  # (1, 64, 48, 17)
    ```
    """

    def __init__(
        self,
        channels,
        bn_epsilon=TORCH_BN_EPSILON,
        bn_momentum=TORCH_BN_MOMENTUM,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(channels) <= 0:
            raise ValueError(
                f"`channels` must be a positive int. Received: {channels}"
            )
        self.channels = int(channels)
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.conv = self._conv(3, "conv")
        self.channel_conv1 = self._conv(1, "channel_conv1")
        self.channel_conv2 = self._conv(1, "channel_conv2")
        self.spatial_conv = self._conv(1, "spatial_conv")
        self.spatial_depthwise = DepthwiseConv(
            SPATIAL_KERNEL,
            padding="same",
            use_bias=True,
            dtype=self.dtype_policy,
            name="spatial_depthwise",
        )
        self.spatial_depthwise_bn = BatchNormalization(
            epsilon=bn_epsilon,
            momentum=bn_momentum,
            dtype=self.dtype_policy,
            name="spatial_depthwise_bn",
        )

    def _conv(self, kernel_size, name):
        return ConvBNAct(
            self.channels,
            kernel_size,
            use_bias=True,
            bn_epsilon=self.bn_epsilon,
            bn_momentum=self.bn_momentum,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        if input_shape[-1] != self.channels:
            raise ValueError(
                f"PoseRefineMachine '{self.name}' expects {self.channels} "
                f"channels. Received input shape {tuple(input_shape)}."
            )
        self.conv.build(input_shape)
        pooled = (input_shape[0], 1, 1, self.channels)
        self.channel_conv1.build(pooled)
        self.channel_conv2.build(pooled)
        self.spatial_conv.build(input_shape)
        self.spatial_depthwise.build(input_shape)
        self.spatial_depthwise_bn.build(input_shape)

    def call(self, inputs, training=None):
        features = self.conv(inputs, training=training)
        alpha = ops.mean(features, axis=(1, 2), keepdims=True)
        alpha = self.channel_conv1(alpha, training=training)
        alpha = ops.sigmoid(self.channel_conv2(alpha, training=training))
        beta = self.spatial_conv(features, training=training)
        beta = self.spatial_depthwise(beta)
        beta = self.spatial_depthwise_bn(beta, training=training)
        beta = ops.sigmoid(ops.relu(beta))
        return features * (1.0 + alpha * beta)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "channels": self.channels,
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config
