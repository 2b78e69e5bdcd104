import math

from keras import layers

from kerapose.api_export import kerapose_export
from kerapose.layers.conv_bn_act import ConvBNAct
from kerapose.layers.yolo_layers import C3
from kerapose.layers.yolo_layers import SPP
from kerapose.layers.yolo_layers import YOLO_BN_EPSILON
from kerapose.layers.yolo_layers import YOLO_BN_MOMENTUM
from kerapose.layers.yolo_layers import Focus
from kerapose.layers.yolo_layers import torch_conv_initializer
from kerapose.models.backbone import Backbone

# The official P6 yaml (`yolov5s6_kpts.yaml` and its m6/l6 siblings): layer
# index -> kerapose layer name, channels at width 1 and blocks at depth 1.
# The index is the official `model.<i>` of the checkpoint keys.
BACKBONE_LAYERS = (
    (0, "stem", 64, 1),
    (1, "down1", 128, 1),
    (2, "csp1", 128, 3),
    (3, "down2", 256, 1),
    (4, "csp2", 256, 9),
    (5, "down3", 512, 1),
    (6, "csp3", 512, 9),
    (7, "down4", 768, 1),
    (8, "csp4", 768, 3),
    (9, "down5", 1024, 1),
    (10, "spp", 1024, 1),
    (11, "csp5", 1024, 3),
)
# PAN neck: top-down (reduce_*: 1x1 conv, up, concat, td_*: C3), then
# bottom-up (down_*: 3x3 stride-2 conv, concat, out_*: C3).
NECK_LAYERS = (
    (12, "neck_reduce_p6", 768, 1),
    (15, "neck_td_p5", 768, 3),
    (16, "neck_reduce_p5", 512, 1),
    (19, "neck_td_p4", 512, 3),
    (20, "neck_reduce_p4", 256, 1),
    (23, "neck_out_p3", 256, 3),
    (24, "neck_down_p3", 256, 1),
    (26, "neck_out_p4", 512, 3),
    (27, "neck_down_p4", 512, 1),
    (29, "neck_out_p5", 768, 3),
    (30, "neck_down_p5", 768, 1),
    (32, "neck_out_p6", 1024, 3),
)
OFFICIAL_INDEX = {name: i for i, name, _, _ in BACKBONE_LAYERS + NECK_LAYERS}
STEMS = ("focus", "conv_focus")


def make_divisible(channels, width_multiple, divisor=8):
    """Official width rule: ceil(c * width / 8) * 8."""
    return int(math.ceil(channels * width_multiple / divisor) * divisor)


def scaled_depth(blocks, depth_multiple):
    """Official depth rule: max(round(n * depth), 1) for n > 1."""
    return max(round(blocks * depth_multiple), 1) if blocks > 1 else blocks


@kerapose_export("kerapose.models.YOLOPoseBackbone")
class YOLOPoseBackbone(Backbone):
    """YOLO-Pose backbone and neck: CSP-Darknet P6, SPP and a PAN.

    Implements the network of [YOLO-Pose: Enhancing YOLO for Multi Person
    Pose Estimation Using Object Keypoint Similarity
    Loss](https://arxiv.org/abs/2204.06806) (Maji et al., CVPR 2022
    workshops) as the official `yolov5*6_kpts.yaml` builds it: a Focus stem,
    four stride-2 conv + C3 stages and a fifth to stride 64 with SPP, then a
    top-down and a bottom-up path. The output is a dict of the four neck
    maps `"P3"`..`"P6"` (strides 8..64), also in `pyramid_outputs`.

    Args:
        width_multiple: float. Channel multiple (s 0.5, m 0.75, l 1.0).
            Widths are rounded up to multiples of 8. Defaults to `0.5`.
        depth_multiple: float. C3 depth multiple (s 0.33, m 0.67, l 1.0).
            Defaults to `0.33`.
        stem: str. `"focus"` (space-to-depth + conv) or `"conv_focus"`
            (TI-lite: a 3x3 stride-2 conv replaces the rearrangement).
            Defaults to `"focus"`.
        activation: str. `"silu"`, or `"relu"` for TI-lite. As in the
            official code, the SPP convs keep SiLU either way. Defaults to
            `"silu"`.
        image_shape: tuple. `(H, W, 3)`; H and W multiples of 64 (or
            `None`). Defaults to `(None, None, 3)`.
        bn_epsilon: float. Defaults to `1e-3`.
        bn_momentum: float. Keras convention. Defaults to `0.97`.
        dtype: `None`, str or `keras.DTypePolicy`.

    Example:
    ```python
    backbone = kerapose.models.YOLOPoseBackbone(
        width_multiple=0.0625, image_shape=(128, 64, 3)
    )
    backbone(np.zeros((1, 128, 64, 3), "float32"))["P3"].shape
    # (1, 16, 8, 16)
    ```
    """

    input_divisor = 64

    def __init__(
        self,
        width_multiple=0.5,
        depth_multiple=0.33,
        stem="focus",
        activation="silu",
        image_shape=(None, None, 3),
        bn_epsilon=YOLO_BN_EPSILON,
        bn_momentum=YOLO_BN_MOMENTUM,
        dtype=None,
        **kwargs,
    ):
        image_shape = check_yolo_pose_config(
            width_multiple, depth_multiple, stem, image_shape
        )
        width_multiple = float(width_multiple)
        depth_multiple = float(depth_multiple)

        # === Functional Model ===
        inputs = layers.Input(shape=image_shape, name="images")
        unit = _UnitFactory(
            width_multiple,
            depth_multiple,
            activation,
            bn_epsilon,
            bn_momentum,
            dtype,
        )
        x = unit.focus(inputs, stem == "conv_focus")
        x = unit.conv(x, "down1", 3, 2)
        x = unit.c3(x, "csp1")
        x = unit.conv(x, "down2", 3, 2)
        c3_p3 = x = unit.c3(x, "csp2")
        x = unit.conv(x, "down3", 3, 2)
        c3_p4 = x = unit.c3(x, "csp3")
        x = unit.conv(x, "down4", 3, 2)
        c3_p5 = x = unit.c3(x, "csp4")
        x = unit.conv(x, "down5", 3, 2)
        x = unit.spp(x)
        # The yaml's last backbone C3 has no shortcut (`[1024, False]`).
        x = unit.c3(x, "csp5", False)

        reduce_p6 = x = unit.conv(x, "neck_reduce_p6", 1)
        x = unit.c3(unit.up_concat(x, c3_p5, "p5"), "neck_td_p5", False)
        reduce_p5 = x = unit.conv(x, "neck_reduce_p5", 1)
        x = unit.c3(unit.up_concat(x, c3_p4, "p4"), "neck_td_p4", False)
        reduce_p4 = x = unit.conv(x, "neck_reduce_p4", 1)
        x = unit.c3(unit.up_concat(x, c3_p3, "p3"), "neck_out_p3", False)
        outputs = {"P3": x}
        for level, skip in ((3, reduce_p4), (4, reduce_p5), (5, reduce_p6)):
            x = unit.conv(x, f"neck_down_p{level}", 3, 2)
            x = layers.Concatenate(
                axis=-1, dtype=dtype, name=f"neck_out_concat_p{level + 1}"
            )([x, skip])
            x = unit.c3(x, f"neck_out_p{level + 1}", False)
            outputs[f"P{level + 1}"] = x
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.width_multiple = width_multiple
        self.depth_multiple = depth_multiple
        self.stem = stem
        self.activation = activation
        self.image_shape = image_shape
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.pyramid_outputs = outputs
        self.output_channels = [int(t.shape[-1]) for t in outputs.values()]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "width_multiple": self.width_multiple,
                "depth_multiple": self.depth_multiple,
                "stem": self.stem,
                "activation": self.activation,
                "image_shape": list(self.image_shape),
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config


class _UnitFactory:
    """Builds the yaml's layers at the scaled widths and depths."""

    def __init__(self, width, depth, activation, eps, momentum, dtype):
        self.width, self.depth = width, depth
        self.norm = {
            "activation": activation,
            "bn_epsilon": eps,
            "bn_momentum": momentum,
            "dtype": dtype,
        }
        table = BACKBONE_LAYERS + NECK_LAYERS
        self.channels = {name: c for _, name, c, _ in table}
        self.blocks = {name: n for _, name, _, n in table}

    def filters(self, name):
        return make_divisible(self.channels[name], self.width)

    def focus(self, x, learned_slice):
        return Focus(
            self.filters("stem"), 3, learned_slice, name="stem", **self.norm
        )(x)

    def conv(self, x, name, kernel_size, strides=1):
        return ConvBNAct(
            self.filters(name),
            kernel_size,
            strides=strides,
            kernel_initializer=torch_conv_initializer(),
            name=name,
            **self.norm,
        )(x)

    def c3(self, x, name, shortcut=True):
        blocks = scaled_depth(self.blocks[name], self.depth)
        return C3(self.filters(name), blocks, shortcut, name=name, **self.norm)(
            x
        )

    def spp(self, x):
        # The official SPP takes no activation argument: SiLU even in
        # TI-lite's ReLU models.
        norm = dict(self.norm, activation="silu")
        return SPP(self.filters("spp"), (3, 5, 7), name="spp", **norm)(x)

    def up_concat(self, x, skip, level):
        dtype = self.norm["dtype"]
        x = layers.UpSampling2D(
            2, interpolation="nearest", dtype=dtype, name=f"neck_up_{level}"
        )(x)
        return layers.Concatenate(
            axis=-1, dtype=dtype, name=f"neck_td_concat_{level}"
        )([x, skip])


def check_yolo_pose_config(width_multiple, depth_multiple, stem, image_shape):
    """Validates the YOLO-Pose backbone arguments; returns `image_shape`."""
    for name, value in (
        ("width_multiple", width_multiple),
        ("depth_multiple", depth_multiple),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(
                f"`{name}` must be a positive number (s: 0.5 / 0.33, m: "
                f"0.75 / 0.67). Received: {value!r}"
            )
        if not 0 < value <= 4:
            raise ValueError(
                f"`{name}` must be in (0, 4] (s: 0.5 / 0.33, m: 0.75 / "
                f"0.67). Received: {value!r}"
            )
    if stem not in STEMS:
        raise ValueError(
            f"`stem` must be one of {STEMS} ('conv_focus' is TI-lite). "
            f"Received: {stem!r}"
        )
    image_shape = tuple(image_shape)
    if len(image_shape) != 3 or image_shape[-1] != 3:
        raise ValueError(
            f"`image_shape` must be (H, W, 3). Received: {image_shape}"
        )
    for size in image_shape[:2]:
        if size is not None and (size <= 0 or size % 64):
            raise ValueError(
                "YOLO-Pose needs H and W to be positive multiples of 64 (its "
                "coarsest level has stride 64). Received: "
                f"image_shape={image_shape}; pad or resize, e.g. to 640x640."
            )
    return image_shape
