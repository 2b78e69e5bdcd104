from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.aligned_resize import AlignedBilinearResize
from kerapose.layers.conv_bn_act import TORCH_BN_EPSILON
from kerapose.layers.conv_bn_act import TORCH_BN_MOMENTUM
from kerapose.layers.conv_bn_act import ConvBNAct
from kerapose.layers.pose_refine_machine import PoseRefineMachine
from kerapose.layers.residual_steps_block import ResidualStepsBlock
from kerapose.models.backbone import Backbone
from kerapose.models.input_checks import check_image_batch

NUM_LEVELS = 4  # official encoder layers = decoder units per stage
MAX_LEVELS = 4  # deeper encoders would need inputs in multiples of 64


def check_input_size(images, image_shape, owner):
    """A clear error for images of another size than the model was built for.

    RSN's resizes target fixed decoder sizes, so a model serves one input
    size; without this check another size fails deep in the graph.
    """
    check_image_batch(images, owner, divisor=32)
    if isinstance(images, dict):
        images = images["images"]
    size = tuple(images.shape[1:3])
    if all(s is not None for s in size) and size != tuple(image_shape[:2]):
        raise ValueError(
            f"{owner} was built for {image_shape[0]}x{image_shape[1]} "
            f"inputs (H x W). Received shape {tuple(images.shape)}. Resize "
            "the crops, or build the model with `image_shape=(H, W, 3)` "
            "(e.g. `kerapose.zoo.load(name, input_shape=(H, W, 3))`)."
        )


@kerapose_export("kerapose.models.RSNBackbone")
class RSNBackbone(Backbone):
    """Residual Steps Network: stages of RSB encoders and upsampling decoders.

    Implements [Learning Delicate Local Representations for Multi-Person
    Pose Estimation](https://arxiv.org/abs/2003.04030) (Cai et al., ECCV
    2020) as the official network builds it:

    * a 7x7 stride-2 conv and a 3x3 stride-2 max-pool;
    * per stage, an encoder of four layers of `ResidualStepsBlock`s (strides 4,
      8, 16, 32) and a decoder of four upsampling units from stride 32 up to
      stride 4 (`num_units` changes the four). Unit u adds a 1x1 conv of the
      encoder feature to a 1x1 conv of the previous unit's output, resized with
      corner-aligned bilinear sampling, then ReLU; each unit predicts heatmaps
      (1x1 conv-BN-ReLU, 3x3 conv-BN) resized to stride 4;
    * between stages, every level of the next encoder adds two 1x1
      conv-BN-ReLU skips (of this stage's encoder and decoder features),
      and the next stage starts from a 1x1 conv of the last decoder output;
    * optionally the Pose Refine Machine on the final heatmaps (the paper
      places it after the last stage; the official code defines it but does
      not connect it).

    The output stacks every unit's heatmaps, (B, U, h, w, K) with
    U = num_units * num_stages,
    ordered stage by stage and, within a stage, from the coarsest unit to
    the finest; `[:, -1]` is the prediction. `pyramid_outputs` holds the
    last stage's decoder features (`"P2"`..`"P5"` = strides 4..32).

    MMPose's RSN is this network without conv biases (`conv_bias=False`),
    with `num_units` and `expand_times` as parameters (its COCO models use
    the official 4 and 26).

    Layer names follow the official modules: `stem_conv`,
    `stage{s}_layer{l}_block{i}` (l = 1..4), `stage{s}_up{u}_{lateral,
    top_down, skip1, skip2, res_conv, heatmap}` (u = 1 at the coarsest
    stride to num_units at stride 4), `stage{s}_cross_conv`, `prm`.

    Shapes: B batch, K keypoints, (H, W) input, (h, w) = (H/4, W/4).

    Args:
        stage_blocks: tuple of `num_units` ints. RSBs per encoder layer,
            e.g. `(2, 2, 2, 2)` for RSN-18, `(3, 4, 6, 3)` for RSN-50.
        num_stages: int. Stacked stages (4 for 4xRSN). Defaults to `1`.
        num_units: int. Encoder layers, and decoder units, per stage (1 to
            4). Defaults to `4` (the official network).
        layer_channels: tuple of `num_units` ints. RSB widths (before
            expansion). Defaults to `(64, 128, 256, 512)`.
        stem_channels: int. Stem width, also the width of the cross-stage
            conv. Defaults to `64`.
        block_expansion: int. RSB expansion. Defaults to `1`.
        expand_times: int. RSB branch width = `in_channels * expand_times
            // 64`. Defaults to `26` (the official value).
        conv_bias: bool. Whether every conv before a BN has a bias.
            Defaults to `True` (the official network); `False` is
            MMPose's RSN.
        upsample_channels: int. Decoder width. Defaults to `256`.
        num_keypoints: int. Heatmap channels. Defaults to `17`.
        use_prm: bool. Refine the final heatmaps with PRM. Defaults to
            `False` (the official network).
        image_shape: tuple. `(H, W, 3)` with static H and W, multiples of
            32. Defaults to `(256, 192, 3)`.
        bn_epsilon: float. Defaults to `1e-5`.
        bn_momentum: float. Defaults to `0.9`.
        dtype: `None`, str or `keras.DTypePolicy`.

    Example:
    ```python
    backbone = kerapose.models.RSNBackbone(
        stage_blocks=(1, 1, 1, 1), layer_channels=(8, 16, 32, 64),
        stem_channels=8, upsample_channels=16, image_shape=(64, 64, 3),
    )
    backbone(np.zeros((1, 64, 64, 3), "float32")).shape  # (1, 4, 16, 16, 17)
    ```
    """

    input_divisor = 32

    def __init__(
        self,
        stage_blocks=(2, 2, 2, 2),
        num_stages=1,
        layer_channels=(64, 128, 256, 512),
        stem_channels=64,
        block_expansion=1,
        upsample_channels=256,
        num_units=NUM_LEVELS,
        expand_times=26,
        conv_bias=True,
        num_keypoints=17,
        use_prm=False,
        image_shape=(256, 192, 3),
        bn_epsilon=TORCH_BN_EPSILON,
        bn_momentum=TORCH_BN_MOMENTUM,
        dtype=None,
        **kwargs,
    ):
        if (
            isinstance(num_units, bool)
            or not isinstance(num_units, int)
            or not 1 <= num_units <= MAX_LEVELS
        ):
            raise ValueError(
                f"`num_units` must be an int from 1 to {MAX_LEVELS}. "
                f"Received: {num_units!r}"
            )
        stage_blocks = tuple(int(b) for b in stage_blocks)
        layer_channels = tuple(int(c) for c in layer_channels)
        for arg, value in (
            ("stage_blocks", stage_blocks),
            ("layer_channels", layer_channels),
        ):
            if len(value) != num_units or min(value) <= 0:
                raise ValueError(
                    f"`{arg}` must be {num_units} positive ints (one per "
                    f"unit, `num_units={num_units}`). Received: {value}"
                )
        for arg, value in (
            ("num_stages", num_stages),
            ("expand_times", expand_times),
            ("stem_channels", stem_channels),
            ("block_expansion", block_expansion),
            ("upsample_channels", upsample_channels),
            ("num_keypoints", num_keypoints),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(
                    f"`{arg}` must be a positive int. Received: {value!r}"
                )
            if value <= 0:
                raise ValueError(
                    f"`{arg}` must be a positive int. Received: {value!r}"
                )
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or image_shape[-1] != 3:
            raise ValueError(
                "`image_shape` must be (H, W, 3). "
                f"Received: image_shape={image_shape}"
            )
        for size in image_shape[:2]:
            if size is None or size % self.input_divisor:
                raise ValueError(
                    "RSN needs a static H and W, multiples of 32 (e.g. "
                    "256x192), so that its decoder levels align. "
                    f"Received: image_shape={image_shape}"
                )
        norm = {"bn_epsilon": bn_epsilon, "bn_momentum": bn_momentum}
        conv_bias = bool(conv_bias)

        def conv(filters, kernel_size, name, strides=1, activation="relu"):
            return ConvBNAct(
                filters,
                kernel_size,
                strides=strides,
                activation=activation,
                use_bias=conv_bias,
                dtype=dtype,
                name=name,
                **norm,
            )

        # === Functional Model ===
        inputs = layers.Input(shape=image_shape, name="images")
        x = conv(stem_channels, 7, "stem_conv", strides=2)(inputs)
        # Zero padding equals PyTorch's -inf padding after a ReLU.
        x = layers.ZeroPadding2D(1, dtype=dtype, name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(3, 2, dtype=dtype, name="stem_pool")(x)
        heatmap_size = (image_shape[0] // 4, image_shape[1] // 4)
        skips = None
        heatmaps = []
        for s in range(num_stages):
            last_stage = s == num_stages - 1
            # --- encoder ---
            encoded = []
            for level in range(num_units):
                for i in range(stage_blocks[level]):
                    x = ResidualStepsBlock(
                        layer_channels[level],
                        strides=2 if level > 0 and i == 0 else 1,
                        expansion=block_expansion,
                        expand_times=expand_times,
                        use_bias=conv_bias,
                        dtype=dtype,
                        name=f"stage{s}_layer{level + 1}_block{i}",
                        **norm,
                    )(x)
                if skips is not None:
                    x = layers.Add(
                        dtype=dtype, name=f"stage{s}_layer{level + 1}_skip"
                    )([x, *skips[level]])
                encoded.append(x)
            # --- decoder, coarsest stride -> 4 ---
            decoded = []
            new_skips = [None] * num_units
            out = None
            for u in range(num_units):
                level = num_units - 1 - u
                lateral = encoded[level]
                prefix = f"stage{s}_up{u + 1}"
                y = conv(
                    upsample_channels,
                    1,
                    f"{prefix}_lateral",
                    activation=None,
                )(lateral)
                if out is not None:
                    up = AlignedBilinearResize(
                        lateral.shape[1:3], dtype=dtype, name=f"{prefix}_up"
                    )(out)
                    up = conv(
                        upsample_channels,
                        1,
                        f"{prefix}_top_down",
                        activation=None,
                    )(up)
                    y = layers.Add(dtype=dtype, name=f"{prefix}_add")([y, up])
                out = layers.ReLU(dtype=dtype, name=f"{prefix}_relu")(y)
                decoded.append(out)
                res = conv(upsample_channels, 1, f"{prefix}_res_conv")(out)
                res = conv(
                    num_keypoints, 3, f"{prefix}_heatmap", activation=None
                )(res)
                res = AlignedBilinearResize(
                    heatmap_size, dtype=dtype, name=f"{prefix}_resize"
                )(res)
                heatmaps.append(res)
                if not last_stage:
                    width = lateral.shape[-1]
                    new_skips[level] = (
                        conv(width, 1, f"{prefix}_skip1")(lateral),
                        conv(width, 1, f"{prefix}_skip2")(out),
                    )
            if not last_stage:
                x = conv(stem_channels, 1, f"stage{s}_cross_conv")(out)
                skips = new_skips
        if use_prm:
            heatmaps[-1] = PoseRefineMachine(
                num_keypoints, dtype=dtype, name="prm", **norm
            )(heatmaps[-1])
        outputs = ops.stack(heatmaps, axis=1)
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.stage_blocks = stage_blocks
        self.num_stages = num_stages
        self.num_units = num_units
        self.expand_times = expand_times
        self.conv_bias = conv_bias
        self.layer_channels = layer_channels
        self.stem_channels = stem_channels
        self.block_expansion = block_expansion
        self.upsample_channels = upsample_channels
        self.num_keypoints = num_keypoints
        self.use_prm = bool(use_prm)
        self.image_shape = image_shape
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.pyramid_outputs = {
            f"P{num_units + 1 - u}": d for u, d in enumerate(decoded)
        }

    def __call__(self, inputs, *args, **kwargs):
        check_input_size(inputs, self.image_shape, type(self).__name__)
        return super().__call__(inputs, *args, **kwargs)

    @property
    def heatmap_prefixes(self):
        """Variable-path prefixes of the layers that depend on K."""
        prefixes = [
            f"stage{s}_up{u + 1}_heatmap/"
            for s in range(self.num_stages)
            for u in range(self.num_units)
        ]
        return tuple(prefixes + (["prm/"] if self.use_prm else []))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "stage_blocks": list(self.stage_blocks),
                "num_stages": self.num_stages,
                "num_units": self.num_units,
                "expand_times": self.expand_times,
                "conv_bias": self.conv_bias,
                "layer_channels": list(self.layer_channels),
                "stem_channels": self.stem_channels,
                "block_expansion": self.block_expansion,
                "upsample_channels": self.upsample_channels,
                "num_keypoints": self.num_keypoints,
                "use_prm": self.use_prm,
                "image_shape": list(self.image_shape),
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config
