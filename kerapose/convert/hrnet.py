"""Official HRNet (`PoseHighResolutionNet`) checkpoints -> kerapose HRNet.

Every kerapose `ConvBNAct` unit is one official conv + BN pair. The official
code names such a pair either as siblings (`conv1`/`bn1`) or as the first
two entries of an `nn.Sequential` (`.0`/`.1`); `UNIT_RULES` records which.
"""

import re

from kerapose.convert.checkpoint_io import as_state_dict
from kerapose.convert.core import BN_LEAVES
from kerapose.convert.core import apply_state_dict
from kerapose.convert.core import conv_kernel
from kerapose.convert.core import identity

_NAMED = ("conv", "bn")  # `{}` becomes conv/bn: `layer1.0.conv1`
_SEQ = ("0", "1")  # `{}` becomes 0/1: `transition1.0.0`
_BLOCK = r"(stage\d)_module(\d+)/branch(\d+)_block(\d+)"
_FUSE = r"(stage\d)_module(\d+)/fuse/fuse(\d+)_(\d+)"

# (kerapose unit path regex, official module template, naming style).
UNIT_RULES = (
    (r"stem_conv(\d)", r"{}\1", _NAMED),
    (r"stage1_block(\d+)/conv(\d)", r"layer1.\1.{}\2", _NAMED),
    (r"stage1_block(\d+)/downsample", r"layer1.\1.downsample.{}", _SEQ),
    (_BLOCK + r"/conv(\d)", r"\1.\2.branches.\3.\4.{}\5", _NAMED),
    (_BLOCK + "/downsample", r"\1.\2.branches.\3.\4.downsample.{}", _SEQ),
    # An existing branch whose width changes: one conv unit.
    (r"(transition\d)/branch(\d+)", r"\1.\2.{}", _SEQ),
    # A new branch: a Sequential of stride-2 conv units.
    (r"(transition\d)/branch(\d+)_down(\d+)", r"\1.\2.\3.{}", _SEQ),
    # j > i: 1x1 conv + BN (the upsample has no weights).
    (_FUSE, r"\1.\2.fuse_layers.\3.\4.{}", _SEQ),
    # j < i: the k-th stride-2 conv unit of the chain.
    (_FUSE + r"_down(\d+)", r"\1.\2.fuse_layers.\3.\4.\5.{}", _SEQ),
)
_HEAD = {
    "heatmap_head/kernel": ("final_layer.weight", conv_kernel),
    "heatmap_head/bias": ("final_layer.bias", identity),
}


def unit_key_map(path, rules):
    """Maps a `<unit>/{conv,bn}/<weight>` path through `rules`.

    Args:
        path: str. Kerapose variable path.
        rules: sequence of `(regex, template, (conv name, bn name))` as in
            `UNIT_RULES`.

    Returns:
        `(official key, transform)` or `None`.
    """
    parts = path.rsplit("/", 2)
    if len(parts) != 3:
        return None
    unit, layer, leaf = parts
    for pattern, template, names in rules:
        match = re.fullmatch(pattern, unit)
        if match is None:
            continue
        if layer == "conv" and leaf == "kernel":
            module = match.expand(template.format(names[0]))
            return f"{module}.weight", conv_kernel
        if layer == "bn" and leaf in BN_LEAVES:
            module = match.expand(template.format(names[1]))
            return f"{module}.{BN_LEAVES[leaf]}", identity
        return None
    return None


def hrnet_key_map(path):
    """Kerapose HRNet variable path -> `(official key, transform)` or `None`.

    Example: `"stage3_module0/fuse/fuse2_0_down1/bn/gamma"` ->
    `("stage3.0.fuse_layers.2.0.1.1.weight", identity)`.
    """
    return _HEAD.get(path) or unit_key_map(path, UNIT_RULES)


def convert_hrnet(model, checkpoint, strict=True, skip_prefixes=()):
    """Loads an official HRNet pose checkpoint into a kerapose model.

    Args:
        model: `TopDownPoseEstimator` with an `HRNetBackbone`, or the
            backbone alone (then `final_layer.*` counts as unexpected).
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
        hrnet_key_map,
        strict=strict,
        skip_prefixes=skip_prefixes,
    )
