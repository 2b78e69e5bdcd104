"""Official RSN (`RSN` in `exps/*RSN*.coco/network.py`) checkpoints.

Every official `conv_bn_relu` is a conv with a bias plus a BN, stored as
`<module>.conv.{weight,bias}` and `<module>.bn.*`; each kerapose
`ConvBNAct` unit is one of them. `UNIT_RULES` maps unit paths to official
modules. The official network never instantiates its `PRM` class, so no
official checkpoint holds PRM weights; kerapose reads them from
`prm.<official PRM key>` (the PRM module's own keys under a `prm.` prefix).
"""

import re

from kerapose.convert.checkpoint_io import as_state_dict
from kerapose.convert.core import BN_LEAVES
from kerapose.convert.core import apply_state_dict
from kerapose.convert.core import conv_kernel
from kerapose.convert.core import depthwise_kernel
from kerapose.convert.core import identity

_BLOCK = r"stage(\d+)_layer(\d)_block(\d+)"
_UNIT = r"stage(\d+)_up(\d)"
_ENCODER = r"stage\1.downsample.layer\2.\3"
_DECODER = r"stage\1.upsample.up\2"

# (kerapose unit path regex, official module template).
UNIT_RULES = (
    (r"stem_conv", "top.conv"),
    (_BLOCK + r"/split_conv", _ENCODER + ".conv_bn_relu1"),
    (_BLOCK + r"/branch(\d)_step(\d)", _ENCODER + r".conv_bn_relu2_\4_\5"),
    (_BLOCK + r"/merge_conv", _ENCODER + ".conv_bn_relu3"),
    (_BLOCK + r"/downsample", _ENCODER + ".downsample"),
    (_UNIT + r"_lateral", _DECODER + ".u_skip"),
    (_UNIT + r"_top_down", _DECODER + ".up_conv"),
    (_UNIT + r"_skip1", _DECODER + ".skip1"),
    (_UNIT + r"_skip2", _DECODER + ".skip2"),
    (_UNIT + r"_res_conv", _DECODER + ".res_conv1"),
    (_UNIT + r"_heatmap", _DECODER + ".res_conv2"),
    # The cross-stage conv belongs to the finest unit (up4).
    (r"stage(\d+)_cross_conv", r"stage\1.upsample.up4.cross_conv"),
    (r"prm/conv", "prm.conv_bn_relu_prm_1"),
    (r"prm/channel_conv1", "prm.conv_bn_relu_prm_2_1"),
    (r"prm/channel_conv2", "prm.conv_bn_relu_prm_2_2"),
    (r"prm/spatial_conv", "prm.conv_bn_relu_prm_3_1"),
)
# The PRM's 9x9 depthwise conv is a bare Keras layer pair, not a ConvBNAct.
_PRM_DEPTHWISE = {
    "prm/spatial_depthwise/kernel": (
        "prm.conv_bn_relu_prm_3_2.conv.weight",
        depthwise_kernel,
    ),
    "prm/spatial_depthwise/bias": (
        "prm.conv_bn_relu_prm_3_2.conv.bias",
        identity,
    ),
    **{
        f"prm/spatial_depthwise_bn/{leaf}": (
            f"prm.conv_bn_relu_prm_3_2.bn.{official}",
            identity,
        )
        for leaf, official in BN_LEAVES.items()
    },
}


def rsn_key_map(path):
    """Kerapose RSN variable path -> `(official key, transform)` or `None`.

    Example: `"stage1_layer3_block0/branch4_step2/conv/kernel"` ->
    `("stage1.downsample.layer3.0.conv_bn_relu2_4_2.conv.weight",
    conv_kernel)`.
    """
    if path in _PRM_DEPTHWISE:
        return _PRM_DEPTHWISE[path]
    parts = path.rsplit("/", 2)
    if len(parts) != 3:
        return None
    unit, layer, leaf = parts
    for pattern, template in UNIT_RULES:
        match = re.fullmatch(pattern, unit)
        if match is None:
            continue
        module = match.expand(template)
        if layer == "conv" and leaf == "kernel":
            return f"{module}.conv.weight", conv_kernel
        if layer == "conv" and leaf == "bias":
            return f"{module}.conv.bias", identity
        if layer == "bn" and leaf in BN_LEAVES:
            return f"{module}.bn.{BN_LEAVES[leaf]}", identity
        return None
    return None


def convert_rsn(model, checkpoint, strict=True, skip_prefixes=()):
    """Loads an official RSN checkpoint into a kerapose RSN model.

    Args:
        model: `RSNPoseEstimator` or `RSNBackbone`.
        checkpoint: path to a `.pth`/`.npz`/`.safetensors` file, or a dict
            of official key -> array. A `module.` prefix (DataParallel
            training checkpoints) is removed.
        strict: bool. Raise, without assigning anything, unless every
            variable gets a tensor of the right shape and every tensor is
            used. Defaults to `True`.
        skip_prefixes: tuple of str. Variable-path prefixes to leave as
            they are, e.g. the model's `head_prefixes` for another joint
            count.

    Returns:
        `ConversionReport`.

    Raises:
        CheckpointMismatchError: `strict` and the checkpoint does not fit.
    """
    return apply_state_dict(
        model,
        as_state_dict(checkpoint),
        rsn_key_map,
        strict=strict,
        skip_prefixes=skip_prefixes,
    )
