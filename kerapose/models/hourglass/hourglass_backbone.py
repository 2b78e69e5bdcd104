from keras import layers

from kerapose.api_export import kerapose_export
from kerapose.layers.hourglass_layers import ConvActBN
from kerapose.layers.hourglass_layers import HourglassModule
from kerapose.models.backbone import Backbone

# The official network hard-codes four pooling levels per hourglass.
HOURGLASS_DEPTH = 4


@kerapose_export("kerapose.models.HourglassBackbone")
class HourglassBackbone(Backbone):
    """Stacked hourglass network of Associative Embedding.

    Implements the network of [Associative Embedding: End-to-End Learning
    for Joint Detection and Grouping](https://arxiv.org/abs/1611.05424)
    (Newell et al., NIPS 2017) as the official code builds it: a stem
    (7x7 stride-2 conv, 3x3 conv, 2x2 max-pool, two 3x3 convs), then
    `num_stacks` hourglasses, each followed by two 3x3 convs and a 1x1
    prediction conv; between stacks the prediction and the features are
    mapped back by 1x1 convs and added to the stack's input. Every conv has
    a bias and (except the 1x1s) a ReLU; there is no BatchNorm unless
    `use_bn`.

    The output is a list of `num_stacks` predictions, each
    (B, H/4, W/4, output_channels). In the official configuration
    channels 0-16 are heatmaps, 17-33 tags and 34-67 unused.

    Args:
        num_stacks: int. Defaults to `4`.
        inp_dim: int. Feature width between stacks. Defaults to `256`.
        increase: int. Channels added by the outermost hourglass level.
            Defaults to `128`.
        inner_increase: int. Channels added by each inner level. The
            official constructor does not pass `increase` down, so inner
            levels add their default, 128. Defaults to `128`.
        output_channels: int. Channels of each prediction. Defaults to `68`.
        use_bn: bool. The official `bn` switch: BatchNorm after the ReLU in
            the stem and in the hourglasses' `up1`, `low1` and innermost
            convs. Defaults to `False` (the official configuration).
        image_shape: tuple. `(H, W, 3)`; H and W multiples of 64 (or
            `None`). Defaults to `(None, None, 3)`.
        dtype: `None`, str or `keras.DTypePolicy`.

    Example:
    ```python
    backbone = kerapose.models.HourglassBackbone(
        num_stacks=2, inp_dim=16, increase=8, inner_increase=8,
        image_shape=(128, 64, 3),
    )
    [y.shape for y in backbone(np.zeros((1, 128, 64, 3), "float32"))]
    # [(1, 32, 16, 68), (1, 32, 16, 68)]
    ```
    """

    input_divisor = 4 * 2**HOURGLASS_DEPTH

    def __init__(
        self,
        num_stacks=4,
        inp_dim=256,
        increase=128,
        inner_increase=128,
        output_channels=68,
        use_bn=False,
        image_shape=(None, None, 3),
        dtype=None,
        **kwargs,
    ):
        for name, value, low in (
            ("num_stacks", num_stacks, 1),
            ("inp_dim", inp_dim, 1),
            ("increase", increase, 0),
            ("inner_increase", inner_increase, 0),
            ("output_channels", output_channels, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(
                    f"`{name}` must be an int. Received: {value!r}"
                )
            if value < low:
                raise ValueError(
                    f"`{name}` must be >= {low}. Received: {value!r}"
                )
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or image_shape[-1] != 3:
            raise ValueError(
                "`image_shape` must be (H, W, 3). "
                f"Received: image_shape={image_shape}"
            )
        for size in image_shape[:2]:
            if size is not None and size % self.input_divisor:
                raise ValueError(
                    "The hourglass needs H and W to be multiples of "
                    f"{self.input_divisor} (stride 4, then "
                    f"{HOURGLASS_DEPTH} pooling levels). Received: "
                    f"image_shape={image_shape}. Use e.g. 512x512."
                )

        def unit(filters, kernel_size, name, strides=1, act="relu", bn=False):
            return ConvActBN(
                filters,
                kernel_size,
                strides=strides,
                activation=act,
                use_bn=bn,
                dtype=dtype,
                name=name,
            )

        # === Functional Model ===
        # Names follow the official modules (`pre.<i>`, `features.<s>.<j>`)
        # so that the converter maps them by pattern.
        inputs = layers.Input(shape=image_shape, name="images")
        x = unit(64, 7, "pre0", strides=2, bn=use_bn)(inputs)
        x = unit(128, 3, "pre1", bn=use_bn)(x)
        x = layers.MaxPooling2D(2, dtype=dtype, name="pre2")(x)
        x = unit(128, 3, "pre3", bn=use_bn)(x)
        x = unit(inp_dim, 3, "pre4", bn=use_bn)(x)
        predictions = []
        for s in range(num_stacks):
            feature = HourglassModule(
                HOURGLASS_DEPTH,
                inp_dim,
                increase=increase,
                inner_increase=inner_increase,
                use_bn=use_bn,
                dtype=dtype,
                name=f"stack{s}_hourglass",
            )(x)
            feature = unit(inp_dim, 3, f"stack{s}_conv1")(feature)
            feature = unit(inp_dim, 3, f"stack{s}_conv2")(feature)
            pred = unit(output_channels, 1, f"stack{s}_output", act=None)(
                feature
            )
            predictions.append(pred)
            if s < num_stacks - 1:
                merged_pred = unit(
                    inp_dim, 1, f"stack{s}_merge_pred", act=None
                )(pred)
                merged_feature = unit(
                    inp_dim, 1, f"stack{s}_merge_feature", act=None
                )(feature)
                x = layers.Add(dtype=dtype, name=f"stack{s}_merge")(
                    [x, merged_pred, merged_feature]
                )
        super().__init__(
            inputs=inputs, outputs=predictions, dtype=dtype, **kwargs
        )

        # === Config ===
        self.num_stacks = num_stacks
        self.inp_dim = inp_dim
        self.increase = increase
        self.inner_increase = inner_increase
        self.output_channels = output_channels
        self.use_bn = bool(use_bn)
        self.image_shape = image_shape
        self.output_strides = [4] * num_stacks
        self.pyramid_outputs = {"P2": feature}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_stacks": self.num_stacks,
                "inp_dim": self.inp_dim,
                "increase": self.increase,
                "inner_increase": self.inner_increase,
                "output_channels": self.output_channels,
                "use_bn": self.use_bn,
                "image_shape": list(self.image_shape),
            }
        )
        return config
