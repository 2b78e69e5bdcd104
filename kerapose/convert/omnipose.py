"""Official OmniPose checkpoints -> kerapose OmniPose / OmniPose-Lite.

The backbone keys are HRNet's (`convert.hrnet.UNIT_RULES`), plus the
Gaussian upsampling path of every exchange unit and the WASPv2 decoder. In
OmniPose-Lite a separable conv replaces each backbone conv; its two kernels
sit under `<conv>.spatialConv` (depthwise) and `<conv>.pointConv`.
"""

import re

from kerapose.convert.checkpoint_io import as_state_dict
from kerapose.convert.core import BN_LEAVES
from kerapose.convert.core import apply_state_dict
from kerapose.convert.core import conv_kernel
from kerapose.convert.core import conv_transpose_kernel
from kerapose.convert.core import depthwise_kernel
from kerapose.convert.core import identity
from kerapose.convert.hrnet import UNIT_RULES
from kerapose.convert.hrnet import unit_key_map

WASP_RULES = (
    # The waterfall modules: a (separable) conv and a BN each.
    (r"waspv2/aspp(\d)", r"waspv2.aspp\1.{}", ("atrous_conv", "bn")),
    (r"waspv2/pool", "waspv2.global_avg_pool.{}", ("1", "2")),
    (r"waspv2/fuse", "waspv2.{}1", ("conv", "bn")),
    (r"waspv2/low_level", "waspv2.{}2", ("conv", "bn")),
    (r"waspv2/decode1", "waspv2.last_conv.{}", ("0", "1")),
    (r"waspv2/decode2", "waspv2.last_conv.{}", ("3", "4")),
)
RULES = UNIT_RULES + WASP_RULES
_HEAD = {
    "heatmap_head/kernel": ("waspv2.last_conv.6.weight", conv_kernel),
    "heatmap_head/bias": ("waspv2.last_conv.6.bias", identity),
}
# The up path j > i of an exchange unit is one official Sequential:
# 0 conv, 1 BN, then per x2 step a transposed conv, BN and ReLU (3
# entries), then the Gaussian filter.
_UP = re.compile(
    r"(stage\d)_module(\d+)/fuse/fuse(\d+)_(\d+)_up/"
    r"(deconv|bn|gaussian)(\d*)/(\w+)"
)
_SEPARABLE = re.compile(r"(.+)/conv/(depthwise|pointwise)/kernel")
_SEPARABLE_PARTS = {
    "depthwise": ("spatialConv", depthwise_kernel),
    "pointwise": ("pointConv", conv_kernel),
}


def _up_key(match):
    stage, module, i, j, kind, step, leaf = match.groups()
    base = f"{stage}.{module}.fuse_layers.{i}.{j}"
    if kind == "gaussian" and not step and leaf == "kernel":
        index = 2 + 3 * (int(j) - int(i))
        return f"{base}.{index}.weight", depthwise_kernel
    if kind == "deconv" and step and leaf == "kernel":
        return f"{base}.{2 + 3 * int(step)}.weight", conv_transpose_kernel
    if kind == "bn" and step and leaf in BN_LEAVES:
        return f"{base}.{3 + 3 * int(step)}.{BN_LEAVES[leaf]}", identity
    return None


def omnipose_key_map(path):
    """Kerapose OmniPose variable path -> `(official key, transform)`.

    Examples: `"stage2_module0/fuse/fuse0_1_up/gaussian/kernel"` ->
    `"stage2.0.fuse_layers.0.1.5.weight"`;
    `"stem_conv1/conv/depthwise/kernel"` (Lite) ->
    `"conv1.spatialConv.weight"`. `None` for unknown paths.
    """
    if path in _HEAD:
        return _HEAD[path]
    match = _UP.fullmatch(path)
    if match:
        return _up_key(match)
    match = _SEPARABLE.fullmatch(path)
    if match:
        entry = unit_key_map(f"{match[1]}/conv/kernel", RULES)
        if entry is None:
            return None
        part, transform = _SEPARABLE_PARTS[match[2]]
        return entry[0].replace(".weight", f".{part}.weight"), transform
    return unit_key_map(path, RULES)


def convert_omnipose(model, checkpoint, strict=True, skip_prefixes=()):
    """Loads an official OmniPose (or Lite) checkpoint into a kerapose model.

    Args:
        model: `TopDownPoseEstimator` with an `OmniPoseBackbone`, or the
            backbone alone (then `waspv2.last_conv.6.*` counts as
            unexpected).
        checkpoint: path to a `.pth`/`.npz`/`.safetensors` file, or a dict
            of official key -> array.
        strict: bool. Raise, without assigning anything, unless every
            variable gets a tensor of the right shape and every tensor is
            used. Defaults to `True`.
        skip_prefixes: tuple of str. Variable-path prefixes to leave as
            they are, e.g. `("heatmap_head/",)` for another joint count.

    Returns:
        `ConversionReport`.

    Raises:
        CheckpointMismatchError: `strict` and the checkpoint does not fit.
    """
    return apply_state_dict(
        model,
        as_state_dict(checkpoint),
        omnipose_key_map,
        strict=strict,
        skip_prefixes=skip_prefixes,
    )
