from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.batch_norm import BatchNormalization
from kerapose.layers.conv2d import Conv2D
from kerapose.layers.conv_bn_act import TORCH_BN_EPSILON
from kerapose.layers.conv_bn_act import TORCH_BN_MOMENTUM
from kerapose.layers.conv_bn_act import official_conv_initializer
from kerapose.layers.residual_blocks import BasicBlock


@kerapose_export("kerapose.models.HigherHRNetHead")
class HigherHRNetHead(layers.Layer):
    """HigherHRNet head: stride-4 heatmaps and tags, stride-2 heatmaps.

    Implements the head of [HigherHRNet: Scale-Aware Representation
    Learning for Bottom-Up Human Pose Estimation](
    https://arxiv.org/abs/1908.10357) (Cheng et al., CVPR 2020) as the
    official network builds it, on HRNet's stride-4 features `x`:

    1. `output_0 = final_layer0(x)`: 1x1 conv (bias), K heatmaps then the
       tag maps (K with `tag_per_joint`, else 1).
    2. `concat([x, output_0])`: the features first.
    3. A 4x4 stride-2 transposed conv (no bias), BN, ReLU: an exact x2.
    4. `num_basic_blocks` BasicBlocks.
    5. `output_1 = final_layer1(...)`: K heatmaps at stride 2, no tags.

    Input: (B, h, w, C) features. Output: `[output_0 (B, h, w, K + T),
    output_1 (B, 2h, 2w, K)]` with T tag channels.

    Args:
        num_keypoints: int. Defaults to `17`.
        deconv_channels: int. Width of the stride-2 branch (the official
            configs use the backbone width, 32 or 48). Defaults to `32`.
        num_basic_blocks: int. Defaults to `4`.
        tag_per_joint: bool. One tag map per joint (official) or a single
            one. Defaults to `True`.
        final_kernel_size: int. 1 (official) or 3. Defaults to `1`.
        bn_epsilon: float. Defaults to `1e-5`.
        bn_momentum: float. Defaults to `0.9`.
    """

    def __init__(
        self,
        num_keypoints=17,
        deconv_channels=32,
        num_basic_blocks=4,
        tag_per_joint=True,
        final_kernel_size=1,
        bn_epsilon=TORCH_BN_EPSILON,
        bn_momentum=TORCH_BN_MOMENTUM,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value, low in (
            ("num_keypoints", num_keypoints, 1),
            ("deconv_channels", deconv_channels, 1),
            ("num_basic_blocks", num_basic_blocks, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(
                    f"`{name}` must be an int. Received: {value!r}"
                )
            if value < low:
                raise ValueError(
                    f"`{name}` must be >= {low}. Received: {value!r}"
                )
        if final_kernel_size not in (1, 3):
            raise ValueError(
                "`final_kernel_size` must be 1 or 3 (the official choices). "
                f"Received: {final_kernel_size!r}"
            )
        self.num_keypoints = num_keypoints
        self.deconv_channels = deconv_channels
        self.num_basic_blocks = num_basic_blocks
        self.tag_per_joint = bool(tag_per_joint)
        self.final_kernel_size = final_kernel_size
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.tag_channels = num_keypoints if self.tag_per_joint else 1

        def final(filters, name):
            return Conv2D(
                filters,
                final_kernel_size,
                padding="same",
                kernel_initializer=official_conv_initializer(),
                bias_initializer="zeros",
                dtype=self.dtype_policy,
                name=name,
            )

        self.final_layer0 = final(
            num_keypoints + self.tag_channels, "final_layer0"
        )
        # Kernel 4, stride 2, padding 1 in PyTorch is Keras "same" exactly.
        self.deconv = layers.Conv2DTranspose(
            deconv_channels,
            4,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=official_conv_initializer(),
            dtype=self.dtype_policy,
            name="deconv",
        )
        self.deconv_bn = BatchNormalization(
            epsilon=bn_epsilon,
            momentum=bn_momentum,
            dtype=self.dtype_policy,
            name="deconv_bn",
        )
        self.blocks = [
            BasicBlock(
                deconv_channels,
                bn_epsilon=bn_epsilon,
                bn_momentum=bn_momentum,
                dtype=self.dtype_policy,
                name=f"deconv_block{k}",
            )
            for k in range(num_basic_blocks)
        ]
        self.final_layer1 = final(num_keypoints, "final_layer1")

    def build(self, input_shape):
        b, h, w, c = input_shape
        if c is None:
            raise ValueError(
                "HigherHRNetHead needs a known number of feature channels. "
                f"Received shape {tuple(input_shape)}."
            )
        self.final_layer0.build(input_shape)
        self.deconv.build((b, h, w, c + self.final_layer0.filters))
        up = self.deconv.compute_output_shape(
            (b, h, w, c + self.final_layer0.filters)
        )
        self.deconv_bn.build(up)
        for block in self.blocks:
            block.build(up)
        self.final_layer1.build(up)

    def call(self, inputs, training=None):
        output_0 = self.final_layer0(inputs)
        x = ops.concatenate([inputs, output_0], axis=-1)
        x = self.deconv(x)
        x = ops.relu(self.deconv_bn(x, training=training))
        for block in self.blocks:
            x = block(x, training=training)
        return [output_0, self.final_layer1(x)]

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        h2, w2 = (None if s is None else 2 * s for s in (h, w))
        return [
            (b, h, w, self.num_keypoints + self.tag_channels),
            (b, h2, w2, self.num_keypoints),
        ]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_keypoints": self.num_keypoints,
                "deconv_channels": self.deconv_channels,
                "num_basic_blocks": self.num_basic_blocks,
                "tag_per_joint": self.tag_per_joint,
                "final_kernel_size": self.final_kernel_size,
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config
