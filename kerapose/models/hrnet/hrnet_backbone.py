from keras import layers

from kerapose.api_export import kerapose_export
from kerapose.layers.conv_bn_act import TORCH_BN_EPSILON
from kerapose.layers.conv_bn_act import TORCH_BN_MOMENTUM
from kerapose.layers.conv_bn_act import ConvBNAct
from kerapose.layers.hrnet_layers import HRModule
from kerapose.layers.hrnet_layers import HRNetTransition
from kerapose.layers.residual_blocks import Bottleneck
from kerapose.models.backbone import Backbone


@kerapose_export("kerapose.models.HRNetBackbone")
class HRNetBackbone(Backbone):
    """HRNet: parallel multi-resolution branches with repeated fusion.

    Implements [Deep High-Resolution Representation Learning for Human Pose
    Estimation](https://arxiv.org/abs/1902.09212) (Sun et al., CVPR 2019) as
    the official pose network builds it: a stem of two stride-2 3x3 convs,
    stage 1 of Bottlenecks, then stages 2-4 with 2, 3 and 4 branches made of
    HR modules (BasicBlocks per branch plus an exchange unit). The output is
    the stride-4 branch; with `multi_scale_output=True` the last module also
    fuses the lower branches, available in `pyramid_outputs`
    (`"P2"`..`"P5"` = strides 4..32).

    Args:
        stage_channels: tuple of 4 ints. Branch widths, e.g.
            `(32, 64, 128, 256)` for W32.
        stage_modules: tuple of 3 ints. HR modules in stages 2, 3 and 4.
            Defaults to `(1, 4, 3)`.
        stage_blocks: int. BasicBlocks per branch per module. Defaults to `4`.
        stem_channels: int. Defaults to `64`.
        stage1_blocks: int. Bottlenecks in stage 1. Defaults to `4`.
        stage1_filters: int. Bottleneck width in stage 1 (output is 4x).
            Defaults to `64`.
        multi_scale_output: bool. Whether the last module keeps all
            branches. Defaults to `False` (the official pose network).
        image_shape: tuple. `(H, W, 3)`; H and W multiples of 32 (or
            `None`). Defaults to `(None, None, 3)`.
        bn_epsilon: float. Defaults to `1e-5`.
        bn_momentum: float. Defaults to `0.9`.
        dtype: `None`, str or `keras.DTypePolicy`.

    Example:
    ```python
    backbone = kerapose.models.HRNetBackbone(
        stage_channels=(8, 16, 32, 64), stage_modules=(1, 1, 1),
        stage_blocks=1, image_shape=(64, 64, 3),
    )
    backbone(np.zeros((1, 64, 64, 3), "float32")).shape  # (1, 16, 16, 8)
    ```
    """

    input_divisor = 32

    def __init__(
        self,
        stage_channels=(32, 64, 128, 256),
        stage_modules=(1, 4, 3),
        stage_blocks=4,
        stem_channels=64,
        stage1_blocks=4,
        stage1_filters=64,
        multi_scale_output=False,
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
            multi_scale_output=multi_scale_output,
            bn_epsilon=bn_epsilon,
            bn_momentum=bn_momentum,
            dtype=dtype,
        )
        super().__init__(
            inputs=inputs, outputs=branches[0], dtype=dtype, **kwargs
        )

        # === Config ===
        self.stage_channels = stage_channels
        self.stage_modules = stage_modules
        self.stage_blocks = int(stage_blocks)
        self.stem_channels = int(stem_channels)
        self.stage1_blocks = int(stage1_blocks)
        self.stage1_filters = int(stage1_filters)
        self.multi_scale_output = bool(multi_scale_output)
        self.image_shape = image_shape
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.stage1_output = stage1_output
        self.pyramid_outputs = {f"P{i + 2}": b for i, b in enumerate(branches)}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "stage_channels": list(self.stage_channels),
                "stage_modules": list(self.stage_modules),
                "stage_blocks": self.stage_blocks,
                "stem_channels": self.stem_channels,
                "stage1_blocks": self.stage1_blocks,
                "stage1_filters": self.stage1_filters,
                "multi_scale_output": self.multi_scale_output,
                "image_shape": list(self.image_shape),
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config


def check_hrnet_config(stage_channels, stage_modules, image_shape, divisor):
    """Validates and normalises the HRNet architecture arguments.

    Returns:
        `(stage_channels, stage_modules, image_shape)` as tuples.
    """
    stage_channels = tuple(int(c) for c in stage_channels)
    stage_modules = tuple(int(m) for m in stage_modules)
    if len(stage_channels) != 4 or min(stage_channels) <= 0:
        raise ValueError(
            "`stage_channels` must be 4 positive ints. "
            f"Received: {stage_channels}"
        )
    if len(stage_modules) != 3 or min(stage_modules) <= 0:
        raise ValueError(
            "`stage_modules` must be 3 positive ints (stages 2-4). "
            f"Received: {stage_modules}"
        )
    image_shape = tuple(image_shape)
    if len(image_shape) != 3 or image_shape[-1] != 3:
        raise ValueError(
            "`image_shape` must be (H, W, 3). "
            f"Received: image_shape={image_shape}"
        )
    for size in image_shape[:2]:
        if size is not None and size % divisor:
            raise ValueError(
                f"HRNet needs H and W to be multiples of {divisor} so that "
                f"the branches align. Received: image_shape={image_shape}"
            )
    return stage_channels, stage_modules, image_shape


def apply_hrnet(
    inputs,
    stage_channels,
    stage_modules,
    stage_blocks,
    stem_channels,
    stage1_blocks,
    stage1_filters,
    multi_scale_output=False,
    upsampling="nearest",
    separable=False,
    bn_epsilon=TORCH_BN_EPSILON,
    bn_momentum=TORCH_BN_MOMENTUM,
    dtype=None,
):
    """Stem, stage 1 and stages 2-4 of HRNet on a symbolic input.

    The layer names are the weight-file contract shared by HRNet and
    OmniPose. `upsampling` and `separable` are OmniPose's variations (see
    `ExchangeUnit` and `ConvBNAct`).

    Returns:
        `(branches, stage1_output)`: the stage-4 branches (highest
        resolution first) and the output of stage 1.
    """
    norm = {
        "bn_epsilon": bn_epsilon,
        "bn_momentum": bn_momentum,
        "separable": separable,
        "dtype": dtype,
    }
    x = ConvBNAct(stem_channels, 3, 2, name="stem_conv1", **norm)(inputs)
    x = ConvBNAct(stem_channels, 3, 2, name="stem_conv2", **norm)(x)
    for k in range(stage1_blocks):
        x = Bottleneck(stage1_filters, name=f"stage1_block{k}", **norm)(x)
    stage1_output = x
    branches = [x]
    in_channels = [stage1_filters * Bottleneck.expansion]
    for s, num_modules in enumerate(stage_modules):
        stage = s + 2
        channels = list(stage_channels[:stage])
        branches = HRNetTransition(
            in_channels, channels, name=f"transition{s + 1}", **norm
        )(branches)
        for m in range(num_modules):
            last = stage == 4 and m == num_modules - 1
            branches = HRModule(
                channels,
                num_blocks=stage_blocks,
                multi_scale_output=multi_scale_output or not last,
                upsampling=upsampling,
                name=f"stage{stage}_module{m}",
                **norm,
            )(branches)
        in_channels = channels
    return branches, stage1_output
