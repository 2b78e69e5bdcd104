"""Building blocks of YOLO-Pose (CSP-Darknet P6 backbone, PAN neck, head).

Sublayer names follow the official module names (`cv1`, `m0` for `m.0`,
`conv_slice`), so a variable path maps onto an official key by renaming.
Every conv unit is conv (no bias) + BN (eps 1e-3, Keras momentum 0.97) +
SiLU, padded `k // 2` on every side.
"""

import keras
from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.conv2d import Conv2D
from kerapose.layers.conv_bn_act import ConvBNAct

# BatchNorm of YOLO-Pose (set by the official `initialize_weights`):
# eps 1e-3, PyTorch momentum 0.03.
YOLO_BN_EPSILON = 1e-3
YOLO_BN_MOMENTUM = 0.97


def torch_conv_initializer():
    """PyTorch's default conv init, U(+-1/sqrt(fan_in)); YOLO keeps it."""
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


def _conv_unit(owner, filters, kernel_size=1, strides=1, name=None, **kw):
    """A `ConvBNAct` with `owner`'s activation, BN settings and dtype."""
    return ConvBNAct(
        filters,
        kernel_size,
        strides=strides,
        activation=kw.pop("activation", owner.activation),
        bn_epsilon=owner.bn_epsilon,
        bn_momentum=owner.bn_momentum,
        kernel_initializer=torch_conv_initializer(),
        dtype=owner.dtype_policy,
        name=name,
        **kw,
    )


class _YOLOBlock(layers.Layer):
    """Holds the activation and BN settings every YOLO block shares."""

    def __init__(
        self,
        activation="silu",
        bn_epsilon=YOLO_BN_EPSILON,
        bn_momentum=YOLO_BN_MOMENTUM,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.activation = activation
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "activation": self.activation,
                "bn_epsilon": self.bn_epsilon,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config


def space_to_depth(x):
    """(B, H, W, C) -> (B, H/2, W/2, 4C), channel (dy * 2 + dx) * C + c."""
    shape = ops.shape(x)
    h, w, c = shape[1], shape[2], x.shape[-1]
    x = ops.reshape(x, (-1, h // 2, 2, w // 2, 2, c))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, h // 2, w // 2, 4 * c))


@kerapose_export("kerapose.layers.Focus")
class Focus(_YOLOBlock):
    """YOLO stem: 2x2 space-to-depth, then a conv unit.

    The pixel at (2y + dy, 2x + dx) lands in channel (dy * 2 + dx) * C + c,
    the order of the official `Contract` branch (NHWC space-to-depth). With
    `learned_slice=True` it is the TI-lite `ConvFocus` instead: a 3x3
    stride-2 conv unit to 4C channels replaces the rearrangement.

    Args:
        filters: int. Output channels.
        kernel_size: int. Kernel of the conv after the slice. Defaults to
            `3`.
        learned_slice: bool. `ConvFocus` (TI-lite). Defaults to `False`.
        activation: str. Defaults to `"silu"`.
        bn_epsilon: float. Defaults to `1e-3`.
        bn_momentum: float. Defaults to `0.97`.
    """

    def __init__(self, filters, kernel_size=3, learned_slice=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.learned_slice = bool(learned_slice)
        self.conv_slice = None
        self.conv = _conv_unit(
            self, self.filters, self.kernel_size, name="conv"
        )

    def build(self, input_shape):
        b, h, w, c = input_shape
        if self.learned_slice:
            self.conv_slice = _conv_unit(self, 4 * c, 3, 2, name="conv_slice")
            self.conv_slice.build(input_shape)
        half = (b, None if h is None else h // 2, None if w is None else w // 2)
        self.conv.build((*half, 4 * c))

    def call(self, inputs, training=None):
        if self.learned_slice:
            x = self.conv_slice(inputs, training=training)
        else:
            x = space_to_depth(inputs)
        return self.conv(x, training=training)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        half = (b, None if h is None else h // 2, None if w is None else w // 2)
        return (*half, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "learned_slice": self.learned_slice,
            }
        )
        return config


@kerapose_export("kerapose.layers.YOLOBottleneck")
class YOLOBottleneck(_YOLOBlock):
    """1x1 conv unit, 3x3 conv unit, plus the input when `shortcut`.

    Args:
        filters: int. Output channels (the hidden width is
            `int(filters * expansion)`).
        shortcut: bool. Add the input (only if the widths match).
            Defaults to `True`.
        expansion: float. Defaults to `1.0` (as inside `C3`).
        activation, bn_epsilon, bn_momentum: as in `Focus`.
    """

    def __init__(self, filters, shortcut=True, expansion=1.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.shortcut = bool(shortcut)
        self.expansion = float(expansion)
        hidden = int(self.filters * self.expansion)
        self.cv1 = _conv_unit(self, hidden, 1, name="cv1")
        self.cv2 = _conv_unit(self, self.filters, 3, name="cv2")
        self._add = False

    def build(self, input_shape):
        self._add = self.shortcut and input_shape[-1] == self.filters
        self.cv1.build(input_shape)
        self.cv2.build((*input_shape[:-1], self.cv1.filters))

    def call(self, inputs, training=None):
        y = self.cv2(self.cv1(inputs, training=training), training=training)
        return inputs + y if self._add else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "shortcut": self.shortcut,
                "expansion": self.expansion,
            }
        )
        return config


@kerapose_export("kerapose.layers.C3")
class C3(_YOLOBlock):
    """CSP bottleneck with 3 conv units: cv3(concat[m(cv1(x)), cv2(x)]).

    The bottleneck branch `m` comes first in the concatenation, as in the
    official code.

    Args:
        filters: int. Output channels; the two branches are
            `int(filters / 2)` wide.
        num_blocks: int. `YOLOBottleneck`s in `m`. Defaults to `1`.
        shortcut: bool. Residual bottlenecks (the backbone's C3s); the neck's
            have none. Defaults to `True`.
        activation, bn_epsilon, bn_momentum: as in `Focus`.
    """

    def __init__(self, filters, num_blocks=1, shortcut=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.num_blocks = int(num_blocks)
        self.shortcut = bool(shortcut)
        if self.num_blocks <= 0:
            raise ValueError(
                f"`num_blocks` must be a positive int. Received: {num_blocks}"
            )
        hidden = int(self.filters * 0.5)
        self.cv1 = _conv_unit(self, hidden, 1, name="cv1")
        self.cv2 = _conv_unit(self, hidden, 1, name="cv2")
        self.cv3 = _conv_unit(self, self.filters, 1, name="cv3")
        self.blocks = [
            YOLOBottleneck(
                hidden,
                shortcut=self.shortcut,
                activation=self.activation,
                bn_epsilon=self.bn_epsilon,
                bn_momentum=self.bn_momentum,
                dtype=self.dtype_policy,
                name=f"m{i}",
            )
            for i in range(self.num_blocks)
        ]

    def build(self, input_shape):
        hidden = (*input_shape[:-1], self.cv1.filters)
        self.cv1.build(input_shape)
        self.cv2.build(input_shape)
        for block in self.blocks:
            block.build(hidden)
        self.cv3.build((*input_shape[:-1], 2 * self.cv1.filters))

    def call(self, inputs, training=None):
        y = self.cv1(inputs, training=training)
        for block in self.blocks:
            y = block(y, training=training)
        y = ops.concatenate([y, self.cv2(inputs, training=training)], axis=-1)
        return self.cv3(y, training=training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "num_blocks": self.num_blocks,
                "shortcut": self.shortcut,
            }
        )
        return config


@kerapose_export("kerapose.layers.SPP")
class SPP(_YOLOBlock):
    """Spatial pyramid pooling: cv2(concat[x, pool_k(x) for k]), x = cv1(in).

    A k x k max-pool is applied as (k - 1) / 2 chained 3x3 stride-1 pools,
    each branch starting from cv1's output, as the official module does
    (the same result as one k x k pool).

    Args:
        filters: int. Output channels. cv1 halves the input channels.
        pool_sizes: tuple of odd ints >= 3. Defaults to `(3, 5, 7)`.
        activation, bn_epsilon, bn_momentum: as in `Focus`.
    """

    def __init__(self, filters, pool_sizes=(3, 5, 7), **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.pool_sizes = tuple(int(k) for k in pool_sizes)
        if not self.pool_sizes or any(
            k < 3 or k % 2 == 0 for k in self.pool_sizes
        ):
            raise ValueError(
                "`pool_sizes` must be odd ints >= 3 (each pool is a chain of "
                f"3x3 pools). Received: {pool_sizes}"
            )
        self.cv1 = None
        self.cv2 = _conv_unit(self, self.filters, 1, name="cv2")
        self.pool = layers.MaxPooling2D(
            3, strides=1, padding="same", dtype=self.dtype_policy, name="pool"
        )

    def build(self, input_shape):
        hidden = input_shape[-1] // 2
        self.cv1 = _conv_unit(self, hidden, 1, name="cv1")
        self.cv1.build(input_shape)
        concat = hidden * (len(self.pool_sizes) + 1)
        self.cv2.build((*input_shape[:-1], concat))

    def call(self, inputs, training=None):
        x = self.cv1(inputs, training=training)
        branches = [x]
        for k in self.pool_sizes:
            y = x
            for _ in range((k - 1) // 2):
                y = self.pool(y)
            branches.append(y)
        return self.cv2(ops.concatenate(branches, axis=-1), training=training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"filters": self.filters, "pool_sizes": list(self.pool_sizes)}
        )
        return config


@kerapose_export("kerapose.layers.YOLOPoseLevelHead")
class YOLOPoseLevelHead(_YOLOBlock):
    """The YOLO-Pose Detect head of one pyramid level.

    A 1x1 conv with bias gives `num_anchors * (5 + num_classes)` box
    channels (`det`); the keypoint head gives `num_anchors * 3K`
    (`kpt_out`, a 1x1 conv with bias, preceded with `depthwise_head` by six
    depthwise 3x3 conv units interleaved with five 1x1 conv units,
    `kpt0`..`kpt10`). Both are concatenated along channels (box first) and
    reshaped to (B, h, w, num_anchors, 5 + num_classes + 3K): anchor a takes
    channels a * F .. a * F + F - 1 of the concatenation, as in the
    official head. The result is raw logits.

    Args:
        num_keypoints: int. K.
        num_anchors: int. Defaults to `3`.
        num_classes: int. Defaults to `1` (person).
        depthwise_head: bool. The official `dw_conv_kpt` option. Defaults
            to `True`.
        det_bias: `None` or list of `num_anchors * (5 + num_classes)`
            floats, the initial box-conv bias (objectness and class priors).
        activation: str. Of the keypoint head's conv units; the official
            code uses SiLU here even in ReLU (TI-lite) models. Defaults to
            `"silu"`.
        bn_epsilon, bn_momentum: as in `Focus`.
    """

    num_depthwise = 6

    def __init__(
        self,
        num_keypoints,
        num_anchors=3,
        num_classes=1,
        depthwise_head=True,
        det_bias=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_keypoints = int(num_keypoints)
        self.num_anchors = int(num_anchors)
        self.num_classes = int(num_classes)
        self.depthwise_head = bool(depthwise_head)
        self.det_bias = (
            None if det_bias is None else [float(b) for b in det_bias]
        )
        self.num_det = 5 + self.num_classes
        self.num_fields = self.num_det + 3 * self.num_keypoints
        det_channels = self.num_anchors * self.num_det
        if self.det_bias is not None and len(self.det_bias) != det_channels:
            raise ValueError(
                f"`det_bias` needs {det_channels} values (num_anchors x "
                f"(5 + num_classes)). Received {len(self.det_bias)}."
            )
        self.det = self._output_conv(det_channels, "det")
        self.kpt_units = []
        self.kpt_out = self._output_conv(
            self.num_anchors * 3 * self.num_keypoints, "kpt_out"
        )

    def _output_conv(self, filters, name):
        return Conv2D(
            filters,
            1,
            use_bias=True,
            kernel_initializer=torch_conv_initializer(),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        channels = input_shape[-1]
        self.kpt_units = []
        if self.depthwise_head:
            for j in range(2 * self.num_depthwise - 1):
                depthwise = j % 2 == 0
                unit = _conv_unit(
                    self,
                    channels,
                    3 if depthwise else 1,
                    depthwise=depthwise,
                    name=f"kpt{j}",
                )
                unit.build(input_shape)
                self.kpt_units.append(unit)
        self.det.build(input_shape)
        self.kpt_out.build(input_shape)
        if self.det_bias is not None:
            self.det.bias.assign(
                ops.convert_to_tensor(self.det_bias, self.det.bias.dtype)
            )

    def call(self, inputs, training=None):
        y = inputs
        for unit in self.kpt_units:
            y = unit(y, training=training)
        y = ops.concatenate([self.det(inputs), self.kpt_out(y)], axis=-1)
        shape = ops.shape(y)
        return ops.reshape(
            y, (-1, shape[1], shape[2], self.num_anchors, self.num_fields)
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.num_anchors, self.num_fields)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_keypoints": self.num_keypoints,
                "num_anchors": self.num_anchors,
                "num_classes": self.num_classes,
                "depthwise_head": self.depthwise_head,
                "det_bias": self.det_bias,
            }
        )
        return config
