"""Official RSN (`RSN` in `exps/*RSN*.coco/network.py`) checkpoints.

Every official `conv_bn_relu` is a conv with a bias plus a BN, stored as
`<module>.conv.{weight,bias}` and `<module>.bn.*`; each kerapose
`ConvBNAct` unit is one of them. `UNIT_RULES` maps unit paths to official
modules. The official network never instantiates its `PRM` class, so no
official checkpoint holds PRM weights; kerapose reads them from
`prm.<official PRM key>` (the PRM module's own keys under a `prm.` prefix).

The official RSN is trained on BGR images, kerapose feeds RGB:
`convert_rsn` folds the channel order into the stem conv
(`fold_bgr_input`).
"""

import functools
import re

import numpy as np

from kerapose.convert.checkpoint_io import as_state_dict
from kerapose.convert.core import BN_LEAVES
from kerapose.convert.core import CheckpointMismatchError
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
    # The cross-stage conv belongs to the finest unit (up4 officially;
    # `{units}` is filled in by `rsn_key_map`).
    (r"stage(\d+)_cross_conv", r"stage\1.upsample.up{units}.cross_conv"),
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


def rsn_key_map(path, num_units=4):
    """Kerapose RSN variable path -> `(official key, transform)` or `None`.

    Example: `"stage1_layer3_block0/branch4_step2/conv/kernel"` ->
    `("stage1.downsample.layer3.0.conv_bn_relu2_4_2.conv.weight",
    conv_kernel)`.

    `num_units` is the model's decoder units per stage (4 officially,
    MMPose's `num_units`): the cross-stage conv sits in the last one.
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
        module = match.expand(template.replace("{units}", str(num_units)))
        if layer == "conv" and leaf == "kernel":
            return f"{module}.conv.weight", conv_kernel
        if layer == "conv" and leaf == "bias":
            return f"{module}.conv.bias", identity
        if layer == "bn" and leaf in BN_LEAVES:
            return f"{module}.bn.{BN_LEAVES[leaf]}", identity
        return None
    return None


# The official stem conv, the only layer that sees image channels.
STEM_KERNEL = "top.conv.conv.weight"
CHANNEL_ORDERS = ("bgr", "rgb")


def fold_bgr_input(state_dict):
    """Makes an official RSN state dict take kerapose's RGB input.

    The official RSN reads images with OpenCV (BGR) and normalises them
    with ImageNet's mean and std in BGR order (`exps/*/config.py`:
    `MEANS = [0.406, 0.456, 0.485]`, `STDS = [0.225, 0.224, 0.229]`), so
    its normalised input is kerapose's RGB-normalised input with the
    channels reversed. Reversing the input-channel axis of the stem
    kernel makes the network take the RGB input and compute the same.

    Args:
        state_dict: dict of official key -> array.

    Returns:
        A new dict; the stem kernel (`top.conv.conv.weight`, (O, 3, 7, 7))
        is channel-reversed. A dict without a 3-channel stem kernel (a PRM
        alone, another architecture) is returned unchanged, for the strict
        load to report.
    """
    out = dict(state_dict)
    kernel = out.get(STEM_KERNEL)
    if kernel is not None and np.ndim(kernel) == 4 and kernel.shape[1] == 3:
        out[STEM_KERNEL] = np.ascontiguousarray(np.asarray(kernel)[:, ::-1])
    return out


def convert_rsn(
    model, checkpoint, strict=True, skip_prefixes=(), input_channels="bgr"
):
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
        input_channels: str. Channel order the checkpoint was trained on:
            `"bgr"` (official RSN checkpoints, the default) is folded into
            the stem conv (`fold_bgr_input`) so that the model takes
            kerapose's RGB input; `"rgb"` (e.g. MMPose RSN files renamed
            to the official keys) loads the stem as it is.

    Returns:
        `ConversionReport`.

    Raises:
        CheckpointMismatchError: `strict` and the checkpoint does not fit.
        ValueError: `input_channels` is neither `"bgr"` nor `"rgb"`.
    """
    if input_channels not in CHANNEL_ORDERS:
        raise ValueError(
            f"`input_channels` must be one of {CHANNEL_ORDERS}: the channel "
            "order the checkpoint was trained on ('bgr' for official RSN "
            f"files, 'rgb' for MMPose ones). Received: {input_channels!r}"
        )
    state_dict = as_state_dict(checkpoint)
    if input_channels == "bgr":
        state_dict = fold_bgr_input(state_dict)
    backbone = getattr(model, "backbone", model)
    key_map = functools.partial(
        rsn_key_map, num_units=getattr(backbone, "num_units", 4)
    )
    try:
        return apply_state_dict(
            model,
            state_dict,
            key_map,
            strict=strict,
            skip_prefixes=skip_prefixes,
        )
    except CheckpointMismatchError as e:
        hint = _conv_bias_hint(e.report, backbone)
        if not hint:
            raise
        e.report.hint = hint
        raise CheckpointMismatchError(e.report) from None


_BIAS = ".conv.bias"


def _mmpose_preset_for(backbone):
    """The `*_mmpose` zoo preset with `backbone`'s depth, or `None`."""
    from kerapose.zoo.registry import read_builtin_presets

    for name, preset in read_builtin_presets().items():
        config = preset["config"]["config"]["backbone"]["config"]
        if (
            config.get("conv_bias", True) is False
            and preset.get("tags")
            and tuple(config["stage_blocks"])
            == tuple(getattr(backbone, "stage_blocks", ()))
            and config["num_stages"] == getattr(backbone, "num_stages", None)
        ):
            return name
    return None


def _conv_bias_hint(report, backbone):
    """Why a load failed when the only misfit is the conv biases."""
    if report.mismatched:
        return ""
    missing = list(report.missing.values())
    if (
        missing
        and not report.unexpected
        and all(k and k.endswith(_BIAS) for k in missing)
    ):
        preset = _mmpose_preset_for(backbone)
        use = f"the `{preset}` preset, or " if preset else ""
        return (
            "the checkpoint's convs have no biases (MMPose's RSN) and this "
            "model's have (`conv_bias=True`, the official RSN). Load it "
            f"into {use}an RSN built with `conv_bias=False`."
        )
    unexpected = list(report.unexpected)
    if (
        unexpected
        and not missing
        and all(k.endswith(_BIAS) for k in unexpected)
    ):
        return (
            "the checkpoint's convs have biases (the official RSN) and this "
            "model's have none (`conv_bias=False`, MMPose's RSN). Load it "
            "into an official preset (`rsn_18`, `rsn_50`, ...) or an RSN "
            "built with `conv_bias=True`."
        )
    return ""
