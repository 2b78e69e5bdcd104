"""OmniPose and OmniPose-Lite (official `OmniPose` key layout), plain torch.

Written from `shared/reference/README.md` section 4.2. The backbone is
HRNet's (`hrnet.HRNetBase`) with three changes: the exchange unit's up
path is 1x1 conv + BN, then per x2 step a 3x3 transposed conv + BN + ReLU,
then a frozen depthwise 3x3 Gaussian; stage 4 keeps all four outputs; the
head is WASPv2 on stage-4 branch 0 and the layer1 features. OmniPose-Lite
builds every backbone conv as a `SepConv2d`.
"""

import torch
from torch import nn
from torch.nn import functional as F

from bench.native.hrnet import HighResolutionModule
from bench.native.hrnet import HRNetBase
from bench.native.hrnet import batch_norm
from bench.native.hrnet import check_name
from bench.native.hrnet import fixture_stages
from bench.native.hrnet import plain_conv

FIXTURES = {"omnipose": "omnipose_tiny", "omnipose_lite": "omnipose_lite_tiny"}
W48 = ((48, 96, 192, 384), (1, 4, 3), 4)
# name -> (stage config, separable backbone convs).
FULL_CONFIGS = {"omnipose": (W48, False), "omnipose_lite": (W48, True)}
GAUSSIAN_SIGMA = 3.0


class SepConv2d(nn.Module):
    """Depthwise conv, ReLU, 1x1 pointwise conv; both bias-free."""

    def __init__(
        self, cin, cout, kernel_size, stride=1, padding=0, dilation=1
    ):  # fmt: skip
        super().__init__()
        self.spatialConv = nn.Conv2d(
            cin, cin, kernel_size, stride, padding, dilation, groups=cin,
            bias=False,
        )  # fmt: skip
        self.relu = nn.ReLU(inplace=True)
        self.pointConv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointConv(self.relu(self.spatialConv(x)))


def gaussian_filter(channels):
    """A frozen depthwise 3x3 Gaussian (sigma 3) conv.

    Its weight is a parameter with `requires_grad=False`, as in the
    official model: it is in the state dict and in the parameter count, and
    a checkpoint's values replace the ones set here.
    """
    conv = nn.Conv2d(
        channels, channels, 3, padding=1, groups=channels, bias=False
    )
    taps = torch.tensor([-1.0, 0.0, 1.0])
    squared = taps[:, None] ** 2 + taps[None] ** 2
    kernel = torch.exp(-squared / (2 * GAUSSIAN_SIGMA**2))
    kernel = kernel / kernel.sum()
    with torch.no_grad():
        conv.weight.copy_(kernel.expand_as(conv.weight))
    conv.weight.requires_grad_(False)
    return conv


class OmniModule(HighResolutionModule):
    """An HRNet module whose up path ends in a Gaussian filter."""

    def make_up(self, cin, cout, steps):
        layers = [self.conv(cin, cout, 1), batch_norm(cout)]
        for _ in range(steps):
            layers += [
                nn.ConvTranspose2d(
                    cout, cout, 3, 2, padding=1, output_padding=1, bias=False
                ),
                batch_norm(cout),
                nn.ReLU(inplace=True),
            ]
        layers.append(gaussian_filter(cout))
        return nn.Sequential(*layers)


class AtrousModule(nn.Module):
    """Separable (dilated) conv + BN + ReLU, one WASPv2 waterfall step."""

    def __init__(self, cin, cout, kernel_size, dilation):
        super().__init__()
        padding = 0 if kernel_size == 1 else dilation
        self.atrous_conv = SepConv2d(
            cin, cout, kernel_size, 1, padding, dilation
        )
        self.bn = batch_norm(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.atrous_conv(x)))


class WASPv2(nn.Module):
    """Waterfall atrous pooling with a low-level branch and the heatmaps.

    Args:
        inplanes: int. Width of the stage-4 branch-0 map.
        planes: int. Width of the decoder.
        num_joints: int. Output heatmaps.
        low_level_channels: int. Width of the layer1 features.
    """

    def __init__(self, inplanes, planes, num_joints, low_level_channels=256):
        super().__init__()
        self.aspp1 = AtrousModule(inplanes, planes, 1, 1)
        self.aspp2 = AtrousModule(planes, planes, 3, 6)
        self.aspp3 = AtrousModule(planes, planes, 3, 12)
        self.aspp4 = AtrousModule(planes, planes, 3, 18)
        self.relu = nn.ReLU(inplace=True)
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(inplanes, planes, 1, bias=False),
            batch_norm(planes),
            nn.ReLU(inplace=True),
        )
        self.conv1 = nn.Conv2d(5 * planes, planes, 1, bias=False)
        self.bn1 = batch_norm(planes)
        low = planes // 8
        self.conv2 = nn.Conv2d(low_level_channels, low, 1, bias=False)
        self.bn2 = batch_norm(low)
        self.last_conv = nn.Sequential(
            nn.Conv2d(planes + low, planes, 3, padding=1, bias=False),
            batch_norm(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, padding=1, bias=False),
            batch_norm(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, num_joints, 1),
        )

    def forward(self, x, low_level):
        # A cascade: each atrous module reads the previous one's output.
        x1 = self.aspp1(x)
        x2 = self.aspp2(x1)
        x3 = self.aspp3(x2)
        x4 = self.aspp4(x3)
        pooled = self.global_avg_pool(x)
        pooled = F.interpolate(
            pooled, size=x4.shape[2:], mode="bilinear", align_corners=True
        )
        x = torch.cat((x1, x2, x3, x4, pooled), dim=1)
        x = self.relu(self.bn1(self.conv1(x)))
        low_level = self.relu(self.bn2(self.conv2(low_level)))
        return self.last_conv(torch.cat((x, low_level), dim=1))


class OmniPose(HRNetBase):
    """OmniPose: heatmaps at H/4 from WASPv2.

    Args:
        widths: 4 ints. Defaults to W48.
        modules: 3 ints. Modules in stages 2-4.
        blocks: int. BasicBlocks per branch.
        num_joints: int. Output heatmaps.
        separable: bool. OmniPose-Lite: `SepConv2d` for every backbone
            conv (not the transposed convs, Gaussians or WASPv2 convs).
    """

    module_class = OmniModule

    def __init__(
        self, widths=W48[0], modules=W48[1], blocks=W48[2], num_joints=17,
        separable=False,
    ):  # fmt: skip
        super().__init__()
        conv = SepConv2d if separable else plain_conv
        self.build_backbone(widths, modules, blocks, True, conv)
        # The official code fixes the WASPv2 width at 48, W48's branch-0
        # width; the fixtures use their own branch-0 width instead.
        self.waspv2 = WASPv2(widths[0], widths[0], num_joints)

    def forward(self, x):
        xs, low_level = self.forward_backbone(x)
        return self.waspv2(xs[0], low_level)


def fixture_model(name):
    """The model of `FIXTURES[name]`'s reference fixture (random init)."""
    check_name(name, FIXTURES)
    return OmniPose(
        *fixture_stages(FIXTURES[name]), separable=name == "omnipose_lite"
    )


def full_model(name):
    """A full-size model with PyTorch's default init (a speed baseline)."""
    check_name(name, FULL_CONFIGS)
    stages, separable = FULL_CONFIGS[name]
    return OmniPose(*stages, separable=separable)
