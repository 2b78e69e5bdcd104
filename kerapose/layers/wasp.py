from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.conv2d import Conv2D
from kerapose.layers.conv_bn_act import TORCH_BN_EPSILON
from kerapose.layers.conv_bn_act import TORCH_BN_MOMENTUM
from kerapose.layers.conv_bn_act import ConvBNAct
from kerapose.layers.conv_bn_act import official_conv_initializer


@kerapose_export("kerapose.layers.WASPv2")
class WASPv2(layers.Layer):
    """Waterfall atrous spatial pooling decoder of OmniPose.

    From Artacho and Savakis, *OmniPose: A Multi-Scale Framework for
    Multi-Person Pose Estimation* (arXiv:2103.10180), wired as the official
    network does. Inputs are `[x, low_level]`: the stride-4 backbone map and
    early (stage 1) features at the same resolution.

    1. A waterfall of separable atrous conv-BN-ReLU modules, each fed by the
       previous one: 1x1, then 3x3 with dilations 6, 12, 18 (by default).
    2. A global branch: average pool of `x`, 1x1 conv-BN-ReLU, broadcast
       back to the map size.
    3. The four waterfall outputs and the global branch are concatenated
       and fused by a 1x1 conv-BN-ReLU to `channels`.
    4. `low_level` goes through a 1x1 conv-BN-ReLU to `channels // 8` and
       is concatenated after the fused map.
    5. Two 3x3 conv-BN-ReLU decode the result; with `num_outputs`, a 1x1
       conv with bias then gives one heatmap per keypoint at the input
       resolution (no resize).

    Shapes: B batch, (h, w) map size, C `channels`.

    Args:
        channels: int. Width C of every branch (at least 8).
        dilations: tuple of 4 ints. Defaults to `(1, 6, 12, 18)`; the first
            module is a 1x1 conv, so its dilation has no effect.
        num_outputs: int or `None`. Heatmap channels of the final 1x1 conv;
            `None` returns the decoded (B, h, w, C) features (OmniPose
            models do this and let the estimator's heatmap head be that
            conv). Defaults to `None`.
        bn_epsilon: float. Defaults to `1e-5`.
        bn_momentum: float. Defaults to `0.9`.

    Example:
    ```python
    wasp = kerapose.layers.WASPv2(8, num_outputs=17)
    x = np.zeros((1, 24, 16, 8), "float32")
    low = np.zeros((1, 24, 16, 256), "float32")
    wasp([x, low]).shape  # (1, 24, 16, 17)
    ```
    """

    def __init__(
        self,
        channels,
        dilations=(1, 6, 12, 18),
        num_outputs=None,
        bn_epsilon=TORCH_BN_EPSILON,
        bn_momentum=TORCH_BN_MOMENTUM,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(channels) < 8:
            raise ValueError(
                "`channels` must be at least 8 (the low-level branch has "
                f"channels // 8). Received: {channels}"
            )
        dilations = tuple(int(d) for d in dilations)
        if len(dilations) != 4:
            raise ValueError(
                f"`dilations` must have 4 entries. Received: {dilations}"
            )
        self.channels = int(channels)
        self.dilations = dilations
        self.num_outputs = None if num_outputs is None else int(num_outputs)
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum

        def unit(filters, kernel_size, name, **extra):
            return ConvBNAct(
                filters,
                kernel_size,
                bn_epsilon=bn_epsilon,
                bn_momentum=bn_momentum,
                dtype=self.dtype_policy,
                name=name,
                **extra,
            )

        c = self.channels
        self.waterfall = [
            unit(
                c,
                1 if k == 0 else 3,
                f"aspp{k + 1}",
                dilation_rate=d,
                separable=True,
            )
            for k, d in enumerate(dilations)
        ]
        self.pool = unit(c, 1, "pool")
        self.fuse = unit(c, 1, "fuse")
        self.low_level = unit(c // 8, 1, "low_level")
        self.decode1 = unit(c, 3, "decode1")
        self.decode2 = unit(c, 3, "decode2")
        self.classifier = None
        if self.num_outputs is not None:
            self.classifier = Conv2D(
                self.num_outputs,
                1,
                kernel_initializer=official_conv_initializer(),
                dtype=self.dtype_policy,
                name="classifier",
            )

    def _check_inputs(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                f"WASPv2 '{self.name}' expects [features, low_level]. "
                f"Received: {inputs}"
            )
        return [tuple(s) for s in inputs]

    def build(self, input_shape):
        x_shape, low_shape = self._check_inputs(input_shape)
        shape = x_shape
        for module in self.waterfall:
            module.build(shape)
            shape = module.compute_output_shape(shape)
        c = self.channels
        b, h, w = x_shape[:3]
        self.pool.build((b, 1, 1, x_shape[-1]))
        self.fuse.build((b, h, w, 5 * c))
        self.low_level.build(low_shape)
        self.decode1.build((b, h, w, c + c // 8))
        self.decode2.build((b, h, w, c))
        if self.classifier is not None:
            self.classifier.build((b, h, w, c))

    def call(self, inputs, training=None):
        x, low_level = inputs
        branches = []
        y = x
        for module in self.waterfall:
            y = module(y, training=training)
            branches.append(y)
        pooled = ops.mean(x, axis=(1, 2), keepdims=True)
        pooled = self.pool(pooled, training=training)
        # Official: bilinear resize of a 1x1 map, i.e. a broadcast.
        branches.append(ops.broadcast_to(pooled, ops.shape(y)))
        y = self.fuse(ops.concatenate(branches, axis=-1), training=training)
        low = self.low_level(low_level, training=training)
        y = ops.concatenate([y, low], axis=-1)
        y = self.decode1(y, training=training)
        y = self.decode2(y, training=training)
        if self.classifier is not None:
            y = self.classifier(y)
        return y

    def compute_output_shape(self, input_shape):
        x_shape, _ = self._check_inputs(input_shape)
        return (*x_shape[:3], self.num_outputs or self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "channels": self.channels,
                "dilations": list(self.dilations),
                "num_outputs": self.num_outputs,
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config
