"""YOLO-Pose (P6, depthwise keypoint head) in plain `torch.nn`.

The network that the official `yolov5s6_kpts.yaml` builds (edgeai-yolov5,
branch yolo-pose): a Focus stem, CSP-Darknet stages with C3 blocks, SPP,
a PAN neck and a Detect head with keypoints, as a flat list of layers
`model.<i>` (i = the yaml's layer index). `state_dict()` has exactly the
official keys, so `kerapose.convert.convert_yolo_pose` accepts it.

Shapes: N batch, (H, W) input (multiples of 64), A = 3 anchors, F = 57
fields per anchor ([x, y, w, h, obj, cls, (kx, ky, kconf) x 17]).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.native.hrnet import check_name

FIXTURES = {"yolo_pose_s6": "yolo_pose_tiny"}

NUM_CLASSES = 1
NUM_KEYPOINTS = 17
STRIDES = (8, 16, 32, 64)
# The yaml's P3..P6 anchors, (w, h) pairs in input pixels.
ANCHORS = (
    (19, 27, 44, 40, 38, 94),
    (96, 68, 86, 152, 180, 137),
    (140, 301, 303, 264, 238, 542),
    (436, 615, 739, 380, 925, 792),
)
BN_EPSILON = 1e-3  # set by the official `initialize_weights`
BN_MOMENTUM = 0.03

# (index, inputs, kind, width-1 channels, depth-1 blocks, extra), the
# layers of `yolov5s6_kpts.yaml`; inputs -1 is the previous layer. For
# "conv" extra is (kernel, stride); for "c3" it is the shortcut flag.
LAYERS = (
    (0, -1, "focus", 64, 1, 3),
    (1, -1, "conv", 128, 1, (3, 2)),
    (2, -1, "c3", 128, 3, True),
    (3, -1, "conv", 256, 1, (3, 2)),
    (4, -1, "c3", 256, 9, True),
    (5, -1, "conv", 512, 1, (3, 2)),
    (6, -1, "c3", 512, 9, True),
    (7, -1, "conv", 768, 1, (3, 2)),
    (8, -1, "c3", 768, 3, True),
    (9, -1, "conv", 1024, 1, (3, 2)),
    (10, -1, "spp", 1024, 1, (3, 5, 7)),
    (11, -1, "c3", 1024, 3, False),
    (12, -1, "conv", 768, 1, (1, 1)),
    (13, -1, "upsample", None, 1, None),
    (14, (-1, 8), "concat", None, 1, None),
    (15, -1, "c3", 768, 3, False),
    (16, -1, "conv", 512, 1, (1, 1)),
    (17, -1, "upsample", None, 1, None),
    (18, (-1, 6), "concat", None, 1, None),
    (19, -1, "c3", 512, 3, False),
    (20, -1, "conv", 256, 1, (1, 1)),
    (21, -1, "upsample", None, 1, None),
    (22, (-1, 4), "concat", None, 1, None),
    (23, -1, "c3", 256, 3, False),
    (24, -1, "conv", 256, 1, (3, 2)),
    (25, (-1, 20), "concat", None, 1, None),
    (26, -1, "c3", 512, 3, False),
    (27, -1, "conv", 512, 1, (3, 2)),
    (28, (-1, 16), "concat", None, 1, None),
    (29, -1, "c3", 768, 3, False),
    (30, -1, "conv", 768, 1, (3, 2)),
    (31, (-1, 12), "concat", None, 1, None),
    (32, -1, "c3", 1024, 3, False),
)
DETECT_INPUTS = (23, 26, 29, 32)


def make_divisible(channels, width_multiple, divisor=8):
    """The official width rule: ceil(c * width / 8) * 8."""
    return int(math.ceil(channels * width_multiple / divisor) * divisor)


def scaled_depth(blocks, depth_multiple):
    """The official depth rule: max(round(n * depth), 1) for n > 1."""
    return max(round(blocks * depth_multiple), 1) if blocks > 1 else blocks


class Conv(nn.Module):
    """Conv (no bias, padded k // 2) + BN + SiLU.

    Args:
        in_ch: int. Input channels.
        out_ch: int. Output channels.
        kernel_size: int. Defaults to `1`.
        stride: int. Defaults to `1`.
        groups: int. Defaults to `1`.
    """

    def __init__(self, in_ch, out_ch, kernel_size=1, stride=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(
            in_ch,
            out_ch,
            kernel_size,
            stride,
            kernel_size // 2,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_ch, BN_EPSILON, BN_MOMENTUM)

    def forward(self, x):
        return F.silu(self.bn(self.conv(x)))


class Focus(nn.Module):
    """Space-to-depth (channel (dy * 2 + dx) * C + c) then a conv."""

    def __init__(self, in_ch, out_ch, kernel_size=3):
        super().__init__()
        self.conv = Conv(4 * in_ch, out_ch, kernel_size)

    def forward(self, x):
        n, c, h, w = x.shape
        x = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4)
        return self.conv(x.reshape(n, 4 * c, h // 2, w // 2))


class Bottleneck(nn.Module):
    """1x1 conv, 3x3 conv, plus the input when `shortcut`."""

    def __init__(self, channels, shortcut=True):
        super().__init__()
        self.cv1 = Conv(channels, channels, 1)
        self.cv2 = Conv(channels, channels, 3)
        self.shortcut = shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class C3(nn.Module):
    """CSP block: cv3(concat[m(cv1(x)), cv2(x)]), the m branch first."""

    def __init__(self, in_ch, out_ch, blocks=1, shortcut=True):
        super().__init__()
        hidden = out_ch // 2
        self.cv1 = Conv(in_ch, hidden, 1)
        self.cv2 = Conv(in_ch, hidden, 1)
        self.cv3 = Conv(2 * hidden, out_ch, 1)
        self.m = nn.Sequential(
            *(Bottleneck(hidden, shortcut) for _ in range(blocks))
        )

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPP(nn.Module):
    """cv1, then concat[x, P3(x), P3(P3(x)), P3(P3(P3(x)))], then cv2.

    P3 is a 3x3 stride-1 max-pool; as officially, each branch is its own
    chain of 3x3 pools from cv1's output (equal to pools of 3, 5 and 7).
    """

    def __init__(self, in_ch, out_ch, kernels=(3, 5, 7)):
        super().__init__()
        hidden = in_ch // 2
        self.cv1 = Conv(in_ch, hidden, 1)
        self.cv2 = Conv(hidden * (len(kernels) + 1), out_ch, 1)
        pool = nn.MaxPool2d(3, 1, 1)
        self.m = nn.ModuleList(
            nn.Sequential(*[pool] * (k // 2)) for k in kernels
        )

    def forward(self, x):
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [m(x) for m in self.m], 1))


class Concat(nn.Module):
    """Channel concatenation (a layer of its own to keep the indices)."""

    def forward(self, xs):
        return torch.cat(xs, 1)


def keypoint_head(channels, outputs):
    """Six depthwise 3x3 units interleaved with five 1x1 units, then a
    1x1 conv with bias (the official `dw_conv_kpt` head)."""
    units = []
    for _ in range(5):
        units.append(Conv(channels, channels, 3, groups=channels))
        units.append(Conv(channels, channels, 1))
    units.append(Conv(channels, channels, 3, groups=channels))
    units.append(nn.Conv2d(channels, outputs, 1))
    return nn.Sequential(*units)


class Detect(nn.Module):
    """Per level: det conv (18 ch) and keypoint head (153 ch), concatenated
    and reshaped to (N, A, h, w, 57); decoded in eval mode.

    Args:
        in_channels: tuple of 4 ints. Widths of P3..P6.
        anchors: tuple of 4 tuples. (w, h) pairs per level in pixels.
        strides: tuple of 4 ints.
    """

    def __init__(self, in_channels, anchors=ANCHORS, strides=STRIDES):
        super().__init__()
        self.num_levels = len(anchors)
        self.num_anchors = len(anchors[0]) // 2
        self.num_det = 5 + NUM_CLASSES
        self.num_kpt = 3 * NUM_KEYPOINTS
        self.num_fields = self.num_det + self.num_kpt
        self.strides = tuple(strides)
        pixels = torch.tensor(anchors, dtype=torch.float32).view(
            self.num_levels, -1, 2
        )
        stride = torch.tensor(strides, dtype=torch.float32).view(-1, 1, 1)
        # As the official buffers: `anchors` in stride units, `anchor_grid`
        # in pixels (the decode uses the latter).
        self.register_buffer("anchors", pixels / stride)
        self.register_buffer(
            "anchor_grid",
            pixels.clone().view(self.num_levels, 1, -1, 1, 1, 2),
        )
        na = self.num_anchors
        self.m = nn.ModuleList(
            nn.Conv2d(c, self.num_det * na, 1) for c in in_channels
        )
        self.m_kpt = nn.ModuleList(
            keypoint_head(c, self.num_kpt * na) for c in in_channels
        )

    def raw(self, features):
        """Per level (N, A, h, w, F) logits, before any decoding."""
        levels = []
        for i, x in enumerate(features):
            y = torch.cat((self.m[i](x), self.m_kpt[i](x)), 1)
            n, _, h, w = y.shape
            y = y.view(n, self.num_anchors, self.num_fields, h, w)
            levels.append(y.permute(0, 1, 3, 4, 2).contiguous())
        return levels

    def decode(self, levels):
        """The official eval output.

        Returns:
            (rows, levels): rows (N, R, F) of all levels in (level, anchor,
            y, x) order, decoded; levels as the official second return
            value, per level (N, A, h, w, F) with raw det columns and
            decoded keypoint columns.
        """
        rows = []
        outs = []
        for i, y in enumerate(levels):
            n, a, h, w, f = y.shape
            ys, xs = torch.meshgrid(
                torch.arange(h, device=y.device),
                torch.arange(w, device=y.device),
                indexing="ij",
            )
            grid = torch.stack((xs, ys), 2).view(1, 1, h, w, 2).to(y.dtype)
            stride = self.strides[i]
            det = y[..., : self.num_det].sigmoid()
            xy = (det[..., 0:2] * 2 - 0.5 + grid) * stride
            wh = (det[..., 2:4] * 2) ** 2 * self.anchor_grid[i]
            kpt = y[..., self.num_det :]
            kx = (kpt[..., 0::3] * 2 - 0.5 + grid[..., 0:1]) * stride
            ky = (kpt[..., 1::3] * 2 - 0.5 + grid[..., 1:2]) * stride
            kc = kpt[..., 2::3].sigmoid()
            kpt = torch.stack((kx, ky, kc), -1).view(n, a, h, w, -1)
            decoded = torch.cat((xy, wh, det[..., 4:], kpt), -1)
            rows.append(decoded.view(n, -1, f))
            outs.append(torch.cat((y[..., : self.num_det], kpt), -1))
        return torch.cat(rows, 1), outs

    def forward(self, features):
        levels = self.raw(features)
        return levels if self.training else self.decode(levels)


class YOLOPose(nn.Module):
    """The official `Model` for a `yolov5*6_kpts.yaml`.

    Args:
        width_multiple: float. s6: 0.5. Defaults to `0.5`.
        depth_multiple: float. s6: 0.33. Defaults to `0.33`.

    Call: (N, 3, H, W) -> in eval mode `(rows, levels)` (see
    `Detect.decode`), in train mode the raw levels; `forward(x, raw=True)`
    gives the raw levels (N, A, h, w, F) in any mode.
    """

    def __init__(self, width_multiple=0.5, depth_multiple=0.33):
        super().__init__()
        channels = []
        layers = []
        for i, source, kind, width, blocks, extra in LAYERS:
            c_in = channels[-1] if channels else 3
            c_out = (
                None if width is None else make_divisible(width, width_multiple)
            )
            n = scaled_depth(blocks, depth_multiple)
            if kind == "focus":
                layer = Focus(c_in, c_out, extra)
            elif kind == "conv":
                layer = Conv(c_in, c_out, *extra)
            elif kind == "c3":
                layer = C3(c_in, c_out, n, extra)
            elif kind == "spp":
                layer = SPP(c_in, c_out, extra)
            elif kind == "upsample":
                layer, c_out = nn.Upsample(scale_factor=2.0), c_in
            else:
                layer = Concat()
                c_out = sum(channels[j] for j in source)
            layers.append(layer)
            channels.append(c_out)
        layers.append(Detect([channels[j] for j in DETECT_INPUTS]))
        self.model = nn.ModuleList(layers)
        self.sources = [source for _, source, *_ in LAYERS]

    def forward(self, x, raw=False):
        outputs = []
        for layer, source in zip(self.model[:-1], self.sources):
            if isinstance(source, tuple):
                x = layer([outputs[j] for j in source])
            else:
                x = layer(x)
            outputs.append(x)
        detect = self.model[-1]
        features = [outputs[j] for j in DETECT_INPUTS]
        return detect.raw(features) if raw else detect(features)


def fixture_model(fixture_name="yolo_pose_tiny"):
    """The YOLO-Pose of a reference fixture, with random weights.

    Args:
        fixture_name: str. A value of `FIXTURES` (`"yolo_pose_tiny"`).

    Returns:
        `YOLOPose` with the fixture's shapes.
    """
    check_name(fixture_name, ("yolo_pose_tiny",))
    # yolo_pose_tiny/config.json: yolov5s6_kpts.yaml with width_multiple
    # 0.0625 and depth_multiple 0.33.
    return YOLOPose(width_multiple=0.0625, depth_multiple=0.33)


def full_model(name="yolo_pose_s6"):
    """A full-size YOLO-Pose with random weights.

    Args:
        name: str. `"yolo_pose_s6"`.

    Returns:
        `YOLOPose`.
    """
    check_name(name, ("yolo_pose_s6",))
    return YOLOPose(width_multiple=0.5, depth_multiple=0.33)
