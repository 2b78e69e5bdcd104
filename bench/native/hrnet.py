"""HRNet (`PoseHighResolutionNet` key layout) in plain `torch.nn`.

The native PyTorch baseline of the HRNet family, written from the
architecture description in `shared/reference/README.md` (sections 4.1 and
5). The building blocks (conv factory, `BasicBlock`, `Bottleneck`,
`HighResolutionModule`, `HRNetBase`) are shared with `omnipose.py` and
`higherhrnet.py`. Module attribute names and registration order give the
official state-dict keys, in the official order, so an official checkpoint
loads with `strict=True` and kerapose's converters read `state_dict()`.
"""

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
BN_MOMENTUM = 0.1
FIXTURES = {"hrnet_w32": "hrnet_tiny"}
# name -> (stage widths, modules in stages 2-4, blocks per branch).
FULL_CONFIGS = {
    "hrnet_w32": ((32, 64, 128, 256), (1, 4, 3), 4),
    "hrnet_w48": ((48, 96, 192, 384), (1, 4, 3), 4),
}


def plain_conv(cin, cout, kernel_size, stride=1, padding=0):
    """The official backbone conv: `nn.Conv2d` without bias."""
    return nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=False)


def batch_norm(channels):
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN, the residual added before the last ReLU."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, conv=None):
        super().__init__()
        conv = conv or plain_conv
        self.conv1 = conv(inplanes, planes, 3, stride, 1)
        self.bn1 = batch_norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(planes, planes, 3, 1, 1)
        self.bn2 = batch_norm(planes)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), the residual added before ReLU."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, conv=None):
        super().__init__()
        conv = conv or plain_conv
        self.conv1 = conv(inplanes, planes, 1)
        self.bn1 = batch_norm(planes)
        self.conv2 = conv(planes, planes, 3, stride, 1)
        self.bn2 = batch_norm(planes)
        self.conv3 = conv(planes, planes * self.expansion, 1)
        self.bn3 = batch_norm(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def make_blocks(block, inplanes, planes, count, conv=None):
    """`count` blocks; the first gets a 1x1 conv + BN shortcut when the
    width changes (keys `<i>.downsample.{0,1}`)."""
    conv = conv or plain_conv
    downsample = None
    if inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            conv(inplanes, planes * block.expansion, 1),
            batch_norm(planes * block.expansion),
        )
    layers = [block(inplanes, planes, 1, downsample, conv)]
    inplanes = planes * block.expansion
    layers += [block(inplanes, planes, conv=conv) for _ in range(count - 1)]
    return nn.Sequential(*layers)


def conv_bn_relu(cin, cout, stride, conv, relu=True):
    layers = [conv(cin, cout, 3, stride, 1), batch_norm(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of blocks, then the exchange (fuse) unit.

    Output i sums every input j: identity (j = i), a 1x1 conv + BN then an
    upsampling (j > i, `make_up`), or a chain of i - j stride-2 3x3 convs
    (j < i); then ReLU. A single-scale module only keeps output 0.
    """

    def __init__(self, widths, blocks, block, multi_scale, conv=None):
        super().__init__()
        self.conv = conv or plain_conv
        self.num_branches = len(widths)
        self.branches = nn.ModuleList(
            make_blocks(block, w, w, n, self.conv)
            for w, n in zip(widths, blocks)
        )
        outputs = self.num_branches if multi_scale else 1
        branches = range(self.num_branches)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(self.make_fuse(widths, i, j) for j in branches)
            for i in range(outputs)
        )
        self.relu = nn.ReLU(inplace=True)

    def make_fuse(self, widths, i, j):
        if j == i:
            return None
        if j > i:
            return self.make_up(widths[j], widths[i], j - i)
        chain = [
            conv_bn_relu(widths[j], widths[j], 2, self.conv)
            for _ in range(i - j - 1)
        ]
        chain.append(conv_bn_relu(widths[j], widths[i], 2, self.conv, False))
        return nn.Sequential(*chain)

    def make_up(self, cin, cout, steps):
        """HRNet's up path: 1x1 conv + BN, nearest x2^steps."""
        return nn.Sequential(
            self.conv(cin, cout, 1),
            batch_norm(cout),
            nn.Upsample(scale_factor=2**steps, mode="nearest"),
        )

    def forward(self, xs):
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.num_branches == 1:
            return xs
        outputs = []
        for fuse in self.fuse_layers:
            y = xs[0] if fuse[0] is None else fuse[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + (xs[j] if fuse[j] is None else fuse[j](xs[j]))
            outputs.append(self.relu(y))
        return outputs


class HRNetBase(nn.Module):
    """Stem, layer1, transitions and stages 2-4 registered on `self`.

    The official networks keep these at the top level of their state dict
    (`conv1.weight`, `stage2.0.branches...`), so the heads subclass this
    and add their own attributes after `build_backbone`.
    """

    module_class = HighResolutionModule

    def build_backbone(
        self, widths, modules, blocks, multi_scale_last=False, conv=None
    ):
        """Registers the stem, layer1, transitions and stages 2-4.

        Args:
            widths: 4 ints. Branch widths of stage 4 (stage s uses the
                first s of them).
            modules: 3 ints. Exchange modules in stages 2, 3 and 4.
            blocks: int. BasicBlocks per branch in every module.
            multi_scale_last: bool. Whether the last module of stage 4
                keeps all outputs (OmniPose) or only branch 0 (HRNet).
            conv: conv factory `(cin, cout, k, stride, padding)`. Defaults
                to `plain_conv`.
        """
        self.conv = conv or plain_conv
        self.conv1 = self.conv(3, 64, 3, 2, 1)
        self.bn1 = batch_norm(64)
        self.conv2 = self.conv(64, 64, 3, 2, 1)
        self.bn2 = batch_norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_blocks(Bottleneck, 64, 64, 4, self.conv)
        previous = [64 * Bottleneck.expansion]
        for stage, count in enumerate(modules, start=2):
            current = list(widths[:stage])
            setattr(
                self,
                f"transition{stage - 1}",
                self.make_transition(previous, current),
            )
            last = stage == len(modules) + 1
            multi = [True] * count
            multi[-1] = multi_scale_last or not last
            setattr(
                self,
                f"stage{stage}",
                nn.Sequential(
                    *(
                        self.module_class(
                            current, [blocks] * stage, BasicBlock, m, self.conv
                        )
                        for m in multi
                    )
                ),
            )
            previous = current

    def make_transition(self, previous, current):
        layers = []
        for i, width in enumerate(current):
            if i < len(previous):
                layers.append(
                    None
                    if width == previous[i]
                    else conv_bn_relu(previous[i], width, 1, self.conv)
                )
                continue
            # A new branch grows from the last one by stride-2 steps.
            steps = i + 1 - len(previous)
            chain = [
                conv_bn_relu(
                    previous[-1],
                    width if k == steps - 1 else previous[-1],
                    2,
                    self.conv,
                )
                for k in range(steps)
            ]
            layers.append(nn.Sequential(*chain))
        return nn.ModuleList(layers)

    def forward_backbone(self, x):
        """Returns (stage-4 branch outputs, layer1 output)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        low_level = x = self.layer1(x)
        xs = [x]
        for stage in (2, 3, 4):
            transition = getattr(self, f"transition{stage - 1}")
            # A new branch (i beyond the last) grows from the last one.
            inputs = [xs[min(i, len(xs) - 1)] for i in range(len(transition))]
            xs = [
                x if layer is None else layer(x)
                for x, layer in zip(inputs, transition)
            ]
            xs = getattr(self, f"stage{stage}")(xs)
        return xs, low_level


class HRNet(HRNetBase):
    """Top-down HRNet: heatmaps at H/4 from stage-4 branch 0.

    Args:
        widths: 4 ints. Defaults to W32.
        modules: 3 ints. Modules in stages 2-4.
        blocks: int. BasicBlocks per branch.
        num_joints: int. Output heatmaps.
    """

    def __init__(
        self, widths=(32, 64, 128, 256), modules=(1, 4, 3), blocks=4,
        num_joints=17,
    ):  # fmt: skip
        super().__init__()
        self.build_backbone(widths, modules, blocks)
        self.final_layer = nn.Conv2d(widths[0], num_joints, 1)

    def forward(self, x):
        xs, _ = self.forward_backbone(x)
        return self.final_layer(xs[0])


def fixture_dir(fixture):
    """`shared/reference/<fixture>`, with a clear error when absent."""
    path = SHARED / "reference" / fixture
    if not path.is_dir():
        raise FileNotFoundError(
            f"No reference fixture at {path}; the shared data is not in "
            "this checkout."
        )
    return path


def fixture_stages(fixture):
    """(widths, modules, blocks) of a fixture's `config.json`.

    Every tiny fixture has the same number of blocks in every branch.
    """
    config = json.loads((fixture_dir(fixture) / "config.json").read_text())
    extra = config.get("cfg_MODEL_EXTRA") or config["cfg_used"]["MODEL"]
    extra = extra.get("EXTRA", extra)
    stages = [extra[f"STAGE{s}"] for s in (2, 3, 4)]
    blocks = {n for stage in stages for n in stage["NUM_BLOCKS"]}
    if len(blocks) != 1:
        raise ValueError(f"{fixture}: uneven NUM_BLOCKS {sorted(blocks)}")
    widths = tuple(stages[-1]["NUM_CHANNELS"])
    modules = tuple(stage["NUM_MODULES"] for stage in stages)
    return widths, modules, blocks.pop()


def check_name(name, known):
    """Raises a `ValueError` naming the known models unless `name` is one."""
    if name not in known:
        raise ValueError(
            f"Unknown model {name!r}; expected one of {sorted(known)}."
        )


def fixture_model(name):
    """The model of `FIXTURES[name]`'s reference fixture (random init)."""
    check_name(name, FIXTURES)
    return HRNet(*fixture_stages(FIXTURES[name]), num_joints=17)


def full_model(name):
    """A full-size model with PyTorch's default init (a speed baseline)."""
    check_name(name, FULL_CONFIGS)
    return HRNet(*FULL_CONFIGS[name])


def count_params(model):
    """All parameters, frozen ones included (the official count)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def run_fixture(model, path):
    """Loads `model.pth` strictly and runs `input.npy` in eval mode.

    Args:
        model: the fixture's `nn.Module`.
        path: `Path` of the fixture directory.

    Returns:
        A list of numpy outputs, in the fixture's output order.
    """
    state = torch.load(path / "model.pth", map_location="cpu")
    model.load_state_dict(state, strict=True)
    model.eval()
    y = model(torch.from_numpy(np.load(path / "input.npy")))
    return [t.numpy() for t in (y if isinstance(y, list) else [y])]
