"""RSN (Residual Steps Network) in plain `torch.nn`, official key layout.

The network of the official `RSN` class (`exps/RSN18.coco/network.py`,
`exps/4XRSN18.coco`): a 7x7 stride-2 stem and a max-pool, then stages of
an encoder of four layers of Residual Steps Blocks (strides 4..32) and a
decoder of four upsample units (stride 32 -> 4). Module names are the
official ones, so `state_dict()` has exactly the official keys and
`kerapose.convert.convert_rsn` accepts it.

Shapes: N batch, K keypoints, (H, W) input, (h, w) = (H/4, W/4).
"""

import torch
import torch.nn.functional as F
from torch import nn

from bench.native.hrnet import check_name

FIXTURES = {"rsn_18": "rsn_tiny"}

# The official block derives each branch width from the block's input width
# as in_planes * 26 // 64, with a literal 64 that is *not* the stem width
# (the tiny fixture scales the stem to 8 but keeps this 64).
BRANCH_NUMERATOR = 26
BRANCH_DENOMINATOR = 64
NUM_BRANCHES = 4


def resize_aligned(x, size):
    """Bilinear resize with corner-aligned sampling, as the official RSN."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ConvBNReLU(nn.Module):
    """Conv (with bias) + BN + optional ReLU: the official `conv_bn_relu`.

    Args:
        in_ch: int. Input channels.
        out_ch: int. Output channels.
        kernel_size: int. Square kernel, padded `kernel_size // 2`.
        stride: int. Defaults to `1`.
        relu: bool. Defaults to `True`.
    """

    def __init__(self, in_ch, out_ch, kernel_size, stride=1, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(
            in_ch, out_ch, kernel_size, stride, kernel_size // 2, bias=True
        )
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = relu

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


class ResidualStepsBlock(nn.Module):
    """Residual Steps Block (the official `Bottleneck`, expansion 1).

    A strided 1x1 conv splits into four branches of `in_ch * 26 // 64`
    channels; branch b runs b cascaded 3x3 steps, each adding the matching
    step of the previous branch; the branch ends are concatenated, merged
    by a 1x1 conv-BN, added to the shortcut and ReLU'd.

    Args:
        in_ch: int. Input channels.
        planes: int. Output channels.
        stride: int. Defaults to `1`.
    """

    def __init__(self, in_ch, planes, stride=1):
        super().__init__()
        c = in_ch * BRANCH_NUMERATOR // BRANCH_DENOMINATOR
        self.branch_ch = c
        self.conv_bn_relu1 = ConvBNReLU(in_ch, NUM_BRANCHES * c, 1, stride)
        for b in range(1, NUM_BRANCHES + 1):
            for k in range(1, b + 1):
                setattr(self, f"conv_bn_relu2_{b}_{k}", ConvBNReLU(c, c, 3))
        self.conv_bn_relu3 = ConvBNReLU(NUM_BRANCHES * c, planes, 1, relu=False)
        self.downsample = None
        if stride != 1 or in_ch != planes:
            self.downsample = ConvBNReLU(in_ch, planes, 1, stride, relu=False)

    def forward(self, x):
        splits = torch.split(self.conv_bn_relu1(x), self.branch_ch, dim=1)
        previous = []
        ends = []
        for b in range(1, NUM_BRANCHES + 1):
            outputs = []
            for k in range(1, b + 1):
                y = splits[b - 1] if k == 1 else outputs[-1]
                if k <= len(previous):
                    y = y + previous[k - 1]
                outputs.append(getattr(self, f"conv_bn_relu2_{b}_{k}")(y))
            ends.append(outputs[-1])
            previous = outputs
        out = self.conv_bn_relu3(torch.cat(ends, dim=1))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class Top(nn.Module):
    """7x7 stride-2 conv-BN-ReLU and a 3x3 stride-2 max-pool."""

    def __init__(self, out_ch):
        super().__init__()
        self.conv = ConvBNReLU(3, out_ch, 7, 2)
        self.pool = nn.MaxPool2d(3, 2, 1)

    def forward(self, x):
        return self.pool(self.conv(x))


class Encoder(nn.Module):
    """Four layers of RSBs; from the second stage on, each layer adds the
    previous stage's two skips of its level."""

    def __init__(self, in_ch, widths, blocks):
        super().__init__()
        for i, (width, n) in enumerate(zip(widths, blocks)):
            layer = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                layer.append(ResidualStepsBlock(in_ch, width, stride))
                in_ch = width
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.num_layers = len(widths)

    def forward(self, x, skip1=None, skip2=None):
        features = []
        for i in range(self.num_layers):
            x = getattr(self, f"layer{i + 1}")(x)
            if skip1 is not None:
                x = x + skip1[i] + skip2[i]
            features.append(x)
        return features


class UpsampleUnit(nn.Module):
    """One decoder unit (the official `Upsample_unit`).

    Args:
        index: int. 0 at the coarsest level.
        in_ch: int. Width of the encoder feature of this level.
        up_ch: int. Decoder width.
        num_keypoints: int. Heatmap channels.
        gen_skip: bool. Emit the two skips for the next stage.
        cross_ch: int or `None`. Emit the cross-stage conv with this width
            (the last unit of a non-last stage).
    """

    def __init__(
        self, index, in_ch, up_ch, num_keypoints, gen_skip, cross_ch=None
    ):
        super().__init__()
        self.u_skip = ConvBNReLU(in_ch, up_ch, 1, relu=False)
        if index > 0:
            self.up_conv = ConvBNReLU(up_ch, up_ch, 1, relu=False)
        self.gen_skip = gen_skip
        if gen_skip:
            self.skip1 = ConvBNReLU(in_ch, in_ch, 1)
            self.skip2 = ConvBNReLU(up_ch, in_ch, 1)
        self.cross_conv = None
        if cross_ch is not None:
            self.cross_conv = ConvBNReLU(up_ch, cross_ch, 1)
        self.res_conv1 = ConvBNReLU(up_ch, up_ch, 1)
        self.res_conv2 = ConvBNReLU(up_ch, num_keypoints, 3, relu=False)
        self.index = index

    def forward(self, x, previous, output_size):
        out = self.u_skip(x)
        if self.index > 0:
            up = resize_aligned(previous, x.shape[-2:])
            out = out + self.up_conv(up)
        out = F.relu(out)
        res = resize_aligned(self.res_conv2(self.res_conv1(out)), output_size)
        skips = (self.skip1(x), self.skip2(out)) if self.gen_skip else None
        cross = None if self.cross_conv is None else self.cross_conv(out)
        return out, res, skips, cross


class Decoder(nn.Module):
    """Four upsample units `up1` (coarsest) .. `up4` (stride 4)."""

    def __init__(self, widths, up_ch, num_keypoints, gen_skip, cross_ch):
        super().__init__()
        n = len(widths)
        for i in range(n):
            unit = UpsampleUnit(
                i,
                widths[n - 1 - i],
                up_ch,
                num_keypoints,
                gen_skip,
                cross_ch if i == n - 1 else None,
            )
            setattr(self, f"up{i + 1}", unit)
        self.num_units = n

    def forward(self, features, output_size):
        out = None
        heatmaps = []
        skip1 = [None] * self.num_units
        skip2 = [None] * self.num_units
        cross = None
        for i in range(self.num_units):
            level = self.num_units - 1 - i
            unit = getattr(self, f"up{i + 1}")
            out, res, skips, cross = unit(features[level], out, output_size)
            heatmaps.append(res)
            if skips is not None:
                skip1[level], skip2[level] = skips
        return heatmaps, skip1, skip2, cross


class Stage(nn.Module):
    """One encoder-decoder stage (the official `Single_stage_module`)."""

    def __init__(
        self, stem_ch, widths, blocks, up_ch, num_keypoints, last_stage
    ):
        super().__init__()
        self.downsample = Encoder(stem_ch, widths, blocks)
        self.upsample = Decoder(
            widths,
            up_ch,
            num_keypoints,
            gen_skip=not last_stage,
            cross_ch=None if last_stage else stem_ch,
        )

    def forward(self, x, skip1, skip2, output_size):
        features = self.downsample(x, skip1, skip2)
        return self.upsample(features, output_size)


class RSN(nn.Module):
    """The official multi-stage RSN.

    Args:
        stage_num: int. Stacked stages. Defaults to `1`.
        blocks: tuple of 4 ints. RSBs per encoder layer. Defaults to
            `(2, 2, 2, 2)` (RSN-18).
        widths: tuple of 4 ints. Encoder widths. Defaults to
            `(64, 128, 256, 512)`.
        stem_ch: int. Stem width, also the cross-stage conv width.
            Defaults to `64`.
        upsample_ch: int. Decoder width (`UPSAMPLE_CHANNEL_NUM`).
            Defaults to `256`.
        num_keypoints: int. Defaults to `17`.
        output_shape: `(h, w)` or `None`. Heatmap size (`OUTPUT_SHAPE`);
            `None` uses the stride-4 feature size, which is what the
            official configs set (H/4, W/4).

    Call: (N, 3, H, W) -> (N, K, h, w), the last stage's finest heatmap
    (the official eval output); every unit's heatmap is still computed,
    and in training mode all of the last stage's are returned.
    """

    def __init__(
        self,
        stage_num=1,
        blocks=(2, 2, 2, 2),
        widths=(64, 128, 256, 512),
        stem_ch=64,
        upsample_ch=256,
        num_keypoints=17,
        output_shape=None,
    ):
        super().__init__()
        self.top = Top(stem_ch)
        self.stage_num = stage_num
        for s in range(stage_num):
            stage = Stage(
                stem_ch,
                widths,
                blocks,
                upsample_ch,
                num_keypoints,
                last_stage=s == stage_num - 1,
            )
            setattr(self, f"stage{s}", stage)
        self.output_shape = output_shape

    def forward(self, x):
        x = self.top(x)
        size = self.output_shape or tuple(x.shape[-2:])
        skip1 = skip2 = None
        for s in range(self.stage_num):
            stage = getattr(self, f"stage{s}")
            heatmaps, skip1, skip2, x = stage(x, skip1, skip2, size)
        # Training supervises every unit of the last stage, as the
        # official loss does (all stages there; the benchmark runs one).
        return list(heatmaps) if self.training else heatmaps[-1]


def fixture_model(fixture_name="rsn_tiny"):
    """The RSN of a reference fixture, with random weights.

    Args:
        fixture_name: str. A value of `FIXTURES` (`"rsn_tiny"`).

    Returns:
        `RSN` with the fixture's shapes.
    """
    check_name(fixture_name, ("rsn_tiny",))
    # rsn_tiny/config.json: STAGE_NUM 2, UPSAMPLE_CHANNEL_NUM 32, OUTPUT_SHAPE
    # (24, 16); width_patch: widths 8/16/32/64, stem 8, blocks [1, 1, 1, 1].
    return RSN(
        stage_num=2,
        blocks=(1, 1, 1, 1),
        widths=(8, 16, 32, 64),
        stem_ch=8,
        upsample_ch=32,
        output_shape=(24, 16),
    )


def full_model(name="rsn_18"):
    """A full-size RSN with random weights.

    Args:
        name: str. `"rsn_18"` (the official HEAD RSN-18, one stage).

    Returns:
        `RSN`.
    """
    check_name(name, ("rsn_18",))
    return RSN(stage_num=1, blocks=(2, 2, 2, 2))
