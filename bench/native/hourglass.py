"""Associative Embedding stacked hourglass in plain `torch.nn`.

The network of the official `PoseNet` (pose-ae-train, `models/posenet.py`)
in its official configuration (`bn=False`: no BatchNorm). Module names
are the official ones, so `state_dict()` has exactly the official keys
(without the training wrapper's `model.module.` prefix) and
`kerapose.convert.convert_hourglass` accepts it.

Shapes: N batch, (H, W) input (multiples of 64), (h, w) = (H/4, W/4).
"""

import torch
import torch.nn.functional as F
from torch import nn

from bench.native.hrnet import check_name

FIXTURES = {"hourglass_ae": "ae_hourglass_tiny"}

HOURGLASS_DEPTH = 4  # pooling levels per hourglass, fixed officially


class Conv(nn.Module):
    """Conv with bias, padded `(k - 1) // 2`, then an optional ReLU."""

    def __init__(self, in_ch, out_ch, kernel_size=3, stride=1, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(
            in_ch,
            out_ch,
            kernel_size,
            stride,
            (kernel_size - 1) // 2,
            bias=True,
        )
        self.relu = relu

    def forward(self, x):
        x = self.conv(x)
        return F.relu(x) if self.relu else x


class Merge(nn.Module):
    """1x1 conv without ReLU that maps a stack's output back to `inp_dim`."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv = Conv(in_ch, out_ch, 1, relu=False)

    def forward(self, x):
        return self.conv(x)


class Hourglass(nn.Module):
    """One recursive hourglass level.

    up1(x) + nearest-x2(low3(low2(low1(maxpool(x))))), where low2 is the
    next level (or a 3x3 conv at the innermost one).

    Args:
        depth: int. Levels below this one, itself included.
        channels: int. Width at this level.
        increase: int. Channels added by this level.
        inner_increase: int. Channels added by each inner level. The
            official constructor does not pass `increase` down, so inner
            levels add their default, 128.
    """

    def __init__(self, depth, channels, increase, inner_increase=128):
        super().__init__()
        inner = channels + increase
        self.up1 = Conv(channels, channels, 3)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.low1 = Conv(channels, inner, 3)
        if depth > 1:
            self.low2 = Hourglass(
                depth - 1, inner, inner_increase, inner_increase
            )
        else:
            self.low2 = Conv(inner, inner, 3)
        self.low3 = Conv(inner, channels, 3)

    def forward(self, x):
        low = self.low3(self.low2(self.low1(self.pool1(x))))
        return self.up1(x) + F.interpolate(
            low, scale_factor=2.0, mode="nearest"
        )


class PoseNet(nn.Module):
    """The official Associative Embedding network.

    Args:
        nstack: int. Stacked hourglasses. Defaults to `4`.
        inp_dim: int. Width between stacks. Defaults to `256`.
        oup_dim: int. Prediction channels (17 heatmaps, 17 tags, 34
            unused officially). Defaults to `68`.
        increase: int. Channels added by the outermost hourglass level.
            Defaults to `128`.
        inner_increase: int. Channels added by the inner levels. Defaults
            to `128` (the official constructor's effective value).
        nhwc_input: bool. Take (N, H, W, 3) and permute, as the official
            `forward` does; `False` takes (N, 3, H, W). Defaults to `True`.

    Call: image batch -> (N, nstack, oup_dim, h, w), one prediction per
    stack.
    """

    def __init__(
        self,
        nstack=4,
        inp_dim=256,
        oup_dim=68,
        increase=128,
        inner_increase=128,
        nhwc_input=True,
    ):
        super().__init__()
        self.nstack = nstack
        self.nhwc_input = nhwc_input
        self.pre = nn.Sequential(
            Conv(3, 64, 7, 2),
            Conv(64, 128, 3),
            nn.MaxPool2d(2, 2),
            Conv(128, 128, 3),
            Conv(128, inp_dim, 3),
        )
        self.features = nn.ModuleList(
            nn.Sequential(
                Hourglass(HOURGLASS_DEPTH, inp_dim, increase, inner_increase),
                Conv(inp_dim, inp_dim, 3),
                Conv(inp_dim, inp_dim, 3),
            )
            for _ in range(nstack)
        )
        self.outs = nn.ModuleList(
            Conv(inp_dim, oup_dim, 1, relu=False) for _ in range(nstack)
        )
        self.merge_features = nn.ModuleList(
            Merge(inp_dim, inp_dim) for _ in range(nstack - 1)
        )
        self.merge_preds = nn.ModuleList(
            Merge(oup_dim, inp_dim) for _ in range(nstack - 1)
        )

    def forward(self, images):
        x = images.permute(0, 3, 1, 2) if self.nhwc_input else images
        x = self.pre(x)
        preds = []
        for i in range(self.nstack):
            feature = self.features[i](x)
            preds.append(self.outs[i](feature))
            if i < self.nstack - 1:
                x = (
                    x
                    + self.merge_preds[i](preds[-1])
                    + self.merge_features[i](feature)
                )
        return torch.stack(preds, 1)


def fixture_model(fixture_name="ae_hourglass_tiny", nhwc_input=True):
    """The PoseNet of a reference fixture, with random weights.

    Args:
        fixture_name: str. A value of `FIXTURES` (`"ae_hourglass_tiny"`).
        nhwc_input: bool. See `PoseNet`. Defaults to `True` (official).

    Returns:
        `PoseNet` with the fixture's shapes.
    """
    check_name(fixture_name, ("ae_hourglass_tiny",))
    # ae_hourglass_tiny/config.json: PoseNet(nstack=2, inp_dim=16,
    # oup_dim=68, bn=False, increase=8), every level adding 8 (the default
    # `increase` was patched to 8 for the fixture).
    return PoseNet(
        nstack=2,
        inp_dim=16,
        oup_dim=68,
        increase=8,
        inner_increase=8,
        nhwc_input=nhwc_input,
    )


def full_model(name="hourglass_ae", nhwc_input=True):
    """The official 4-stack network (`task/pose.py`), random weights.

    Args:
        name: str. `"hourglass_ae"`.
        nhwc_input: bool. See `PoseNet`. Defaults to `True` (official).

    Returns:
        `PoseNet`.
    """
    check_name(name, ("hourglass_ae",))
    return PoseNet(4, 256, 68, 128, 128, nhwc_input=nhwc_input)
