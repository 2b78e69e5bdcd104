"""HigherHRNet (official `PoseHigherResolutionNet` key layout), plain torch.

Written from `shared/reference/README.md` section 4.6. The backbone is
HRNet's (`hrnet.HRNetBase`, single-scale last module). The head: a 1x1
conv on stage-4 branch 0 gives heatmaps and tags at H/4; the features,
then those outputs, are concatenated, upsampled x2 by a 4x4 transposed
conv + BN + ReLU, refined by four BasicBlocks and mapped to heatmaps at
H/2. `final_layers` is registered before `deconv_layers`, as officially.
"""

import torch
from torch import nn

from bench.native.hrnet import BasicBlock
from bench.native.hrnet import HRNetBase
from bench.native.hrnet import batch_norm
from bench.native.hrnet import check_name
from bench.native.hrnet import fixture_stages

FIXTURES = {"higherhrnet_w32": "higherhrnet_tiny"}
# name -> (stage widths, modules in stages 2-4, blocks per branch).
FULL_CONFIGS = {
    "higherhrnet_w32": ((32, 64, 128, 256), (1, 4, 3), 4),
    "higherhrnet_w48": ((48, 96, 192, 384), (1, 4, 3), 4),
}


class HigherHRNet(HRNetBase):
    """Bottom-up HigherHRNet with one deconvolution stage.

    Args:
        widths: 4 ints. Defaults to W32; the deconvolution stage is as
            wide as branch 0, as in the official configs.
        modules: 3 ints. Modules in stages 2-4.
        blocks: int. BasicBlocks per branch.
        num_joints: int. Heatmaps per output (plus as many tags at H/4).
        num_basic_blocks: int. BasicBlocks after the deconvolution.
    """

    def __init__(
        self, widths=(32, 64, 128, 256), modules=(1, 4, 3), blocks=4,
        num_joints=17, num_basic_blocks=4,
    ):  # fmt: skip
        super().__init__()
        self.build_backbone(widths, modules, blocks)
        width = widths[0]
        self.final_layers = nn.ModuleList(
            [
                nn.Conv2d(width, 2 * num_joints, 1),  # heatmaps, then tags
                nn.Conv2d(width, num_joints, 1),
            ]
        )
        deconv = nn.Sequential(
            nn.ConvTranspose2d(
                width + 2 * num_joints, width, 4, 2, padding=1, bias=False
            ),
            batch_norm(width),
            nn.ReLU(inplace=True),
        )
        refine = [
            nn.Sequential(BasicBlock(width, width))
            for _ in range(num_basic_blocks)
        ]
        self.deconv_layers = nn.ModuleList([nn.Sequential(deconv, *refine)])

    def forward(self, x):
        """Returns [heatmaps + tags at H/4, heatmaps at H/2] (NCHW)."""
        xs, _ = self.forward_backbone(x)
        x = xs[0]
        first = self.final_layers[0](x)
        # Features first, then the outputs: the deconv kernel's order.
        x = self.deconv_layers[0](torch.cat((x, first), dim=1))
        return [first, self.final_layers[1](x)]


def fixture_model(name):
    """The model of `FIXTURES[name]`'s reference fixture (random init)."""
    check_name(name, FIXTURES)
    return HigherHRNet(*fixture_stages(FIXTURES[name]))


def full_model(name):
    """A full-size model with PyTorch's default init (a speed baseline)."""
    check_name(name, FULL_CONFIGS)
    return HigherHRNet(*FULL_CONFIGS[name])
