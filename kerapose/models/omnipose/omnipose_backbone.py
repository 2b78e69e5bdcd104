from keras import layers

from kerapose.api_export import kerapose_export
from kerapose.layers.conv_bn_act import TORCH_BN_EPSILON
from kerapose.layers.conv_bn_act import TORCH_BN_MOMENTUM
from kerapose.layers.wasp import WASPv2
from kerapose.models.backbone import Backbone
from kerapose.models.hrnet.hrnet_backbone import HRNetBackbone
from kerapose.models.hrnet.hrnet_backbone import apply_hrnet
from kerapose.models.hrnet.hrnet_backbone import check_hrnet_config


@kerapose_export("kerapose.models.OmniPoseBackbone")
class OmniPoseBackbone(HRNetBackbone):
    """OmniPose: HRNet with Gaussian-modulated fusion and a WASPv2 decoder.

    Implements [OmniPose: A Multi-Scale Framework for Multi-Person Pose
    Estimation](https://arxiv.org/abs/2103.10180) (Artacho and Savakis,
    2021) as the official network builds it. It is HRNet (same stem, stage
    1 and stages 2-4, same layer names) with three changes:

    * every exchange unit upsamples with transposed convs followed by a
      fixed Gaussian filter (`GaussianUpsampling`) instead of nearest
      neighbour;
    * all stage-4 modules keep every branch (the official network fuses all
      four outputs of the last module, although only the first is used);
    * a `WASPv2` decoder (layer `"waspv2"`, width = the stride-4 branch
      width) combines the stride-4 branch with the stage-1 features.

    The output is WASPv2's decoded stride-4 map (B, H/4, W/4, C); the
    estimator's 1x1 heatmap head is WASPv2's last conv. With
    `separable=True` every backbone conv becomes a `SeparableConv`
    (depthwise, ReLU, pointwise): OmniPose-Lite, as the official code's
    switch makes it (transposed convs, Gaussian filters and the plain convs
    of WASPv2 stay as they are). `pyramid_outputs` holds the four stage-4
    branches (`"P2"`..`"P5"` = strides 4..32).

    Args:
        stage_channels: tuple of 4 ints. Branch widths, e.g.
            `(48, 96, 192, 384)` for the official W48 model.
        stage_modules: tuple of 3 ints. HR modules in stages 2, 3 and 4.
            Defaults to `(1, 4, 3)`.
        stage_blocks: int. BasicBlocks per branch per module. Defaults to `4`.
        stem_channels: int. Defaults to `64`.
        stage1_blocks: int. Bottlenecks in stage 1. Defaults to `4`.
        stage1_filters: int. Bottleneck width in stage 1 (output is 4x).
            Defaults to `64`.
        separable: bool. OmniPose-Lite. Defaults to `False`.
        image_shape: tuple. `(H, W, 3)`; H and W multiples of 32 (or
            `None`). Defaults to `(None, None, 3)`.
        bn_epsilon: float. Defaults to `1e-5`.
        bn_momentum: float. Defaults to `0.9`.
        dtype: `None`, str or `keras.DTypePolicy`.

    Example:
    ```python
    backbone = kerapose.models.OmniPoseBackbone(
        stage_channels=(8, 16, 32, 64), stage_modules=(1, 1, 1),
        stage_blocks=1, image_shape=(64, 64, 3),
    )
    backbone(np.zeros((1, 64, 64, 3), "float32")).shape  # (1, 16, 16, 8)
    ```
    """

    def __init__(
        self,
        stage_channels=(48, 96, 192, 384),
        stage_modules=(1, 4, 3),
        stage_blocks=4,
        stem_channels=64,
        stage1_blocks=4,
        stage1_filters=64,
        separable=False,
        image_shape=(None, None, 3),
        bn_epsilon=TORCH_BN_EPSILON,
        bn_momentum=TORCH_BN_MOMENTUM,
        dtype=None,
        **kwargs,
    ):
        stage_channels, stage_modules, image_shape = check_hrnet_config(
            stage_channels, stage_modules, image_shape, self.input_divisor
        )

        # === Functional Model ===
        inputs = layers.Input(shape=image_shape, name="images")
        branches, stage1_output = apply_hrnet(
            inputs,
            stage_channels,
            stage_modules,
            stage_blocks,
            stem_channels,
            stage1_blocks,
            stage1_filters,
            multi_scale_output=True,
            upsampling="gaussian",
            separable=separable,
            bn_epsilon=bn_epsilon,
            bn_momentum=bn_momentum,
            dtype=dtype,
        )
        features = WASPv2(
            stage_channels[0],
            bn_epsilon=bn_epsilon,
            bn_momentum=bn_momentum,
            dtype=dtype,
            name="waspv2",
        )([branches[0], stage1_output])
        # HRNetBackbone.__init__ would build HRNet's own graph; go to the
        # functional base directly.
        Backbone.__init__(
            self, inputs=inputs, outputs=features, dtype=dtype, **kwargs
        )

        # === Config ===
        self.stage_channels = stage_channels
        self.stage_modules = stage_modules
        self.stage_blocks = int(stage_blocks)
        self.stem_channels = int(stem_channels)
        self.stage1_blocks = int(stage1_blocks)
        self.stage1_filters = int(stage1_filters)
        self.multi_scale_output = True
        self.separable = bool(separable)
        self.image_shape = image_shape
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.stage1_output = stage1_output
        self.pyramid_outputs = {f"P{i + 2}": b for i, b in enumerate(branches)}

    def get_config(self):
        config = super().get_config()
        # Always multi-scale; not an argument here.
        del config["multi_scale_output"]
        config["separable"] = self.separable
        return config
