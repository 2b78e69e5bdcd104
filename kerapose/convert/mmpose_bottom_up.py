"""MMPose 0.x bottom-up checkpoints -> the official key layouts.

HigherHRNet: MMPose's network is the official one under module prefixes
(`backbone.` for the HRNet, `keypoint_head.` for the head); the renamer
drops them.

Associative Embedding hourglass (`HourglassAENet`): the module tree is the
official `PoseNet`'s, but every conv but the prediction convs is followed
by an eval-mode BatchNorm (the official network has none, and a bias
instead). The renamer folds each BatchNorm into its conv, which gives the
official no-BatchNorm layout with the same outputs. MMPose predicts 34
channels (17 heatmaps, 17 tags) where the official network has 68; the
tensors keep 34, for a model built with `output_channels=34`.

Both renamers refuse a file of another MMPose network, naming it, so that
the error says which model the file belongs to.
"""

import re

import numpy as np

# MMPose BatchNorm epsilon (mmcv `build_norm_layer`, PyTorch default).
BN_EPS = 1e-5
# Keys MMPose may store that carry no weights: the input normaliser's
# mean/std and BatchNorm's step counters.
_DROPPED_PREFIXES = ("data_preprocessor.",)
_DROPPED_SUFFIXES = (".num_batches_tracked",)

# MMPose hourglass module -> official module (before the `.conv.` leaf).
_HOURGLASS_MODULES = (
    (r"backbone\.stem\.(\d)", r"pre.\1"),
    (r"backbone\.hourglass_modules\.(\d+)\.(.+)", r"features.\1.\2"),
    (r"backbone\.out_convs\.(\d+)", r"outs.\1"),
    (r"backbone\.remap_out_convs\.(\d+)", r"merge_preds.\1.conv"),
    (r"backbone\.remap_feature_convs\.(\d+)", r"merge_features.\1.conv"),
)
# An MMPose module followed by a BatchNorm: `<module>.conv.*`, `<module>.bn.*`.
_CONV_MODULE = re.compile(r"(.+)\.(conv|bn)\.(\w+)")


def mmpose_network(state_dict):
    """Names the MMPose network a state dict belongs to, from its keys.

    Args:
        state_dict: dict of MMPose key -> array.

    Returns:
        str, e.g. `"MMPose HigherHRNet"`, or `None` when no known MMPose
        network fits.
    """
    keys = list(state_dict)

    def has(prefix):
        return any(k.startswith(prefix) for k in keys)

    if has("backbone.hourglass_modules."):
        return "MMPose Associative Embedding hourglass (HourglassAENet)"
    if has("backbone.multi_stage_rsn."):
        return "MMPose RSN"
    if has("backbone.stage2."):
        if has("keypoint_head.deconv_layers.") or has(
            "keypoint_head.final_layers."
        ):
            return "MMPose HigherHRNet"
        return "MMPose HRNet (top-down or plain associative embedding)"
    return None


def _check_network(state_dict, expected, family, use):
    found = mmpose_network(state_dict)
    if found == expected:
        return
    what = (
        f"the {found} layout" if found else "no MMPose network kerapose knows"
    )
    raise ValueError(
        f"This MMPose checkpoint does not fit a {family} model: its keys "
        f"show {what}, not the {expected} layout. {use}"
    )


def _kept(key):
    return not (
        key.startswith(_DROPPED_PREFIXES) or key.endswith(_DROPPED_SUFFIXES)
    )


def higherhrnet_from_mmpose(state_dict):
    """Renames MMPose 0.x HigherHRNet keys to the official ones.

    `backbone.<key>` -> `<key>` (the official HRNet keys),
    `keypoint_head.<key>` -> `<key>` (`final_layers.*`, `deconv_layers.*`).
    Other keys are kept as they are, so a strict load reports them.

    Args:
        state_dict: dict of MMPose key -> array.

    Returns:
        dict of official key -> array.

    Raises:
        ValueError: the file is of another MMPose network (named).
    """
    _check_network(
        state_dict,
        "MMPose HigherHRNet",
        "HigherHRNet",
        "Load it into the matching model (e.g. an MMPose HRNet file into "
        "`hrnet_w32`), or pick a HigherHRNet file "
        "(`higher_hrnet32_coco_512x512-*.pth`).",
    )
    out = {}
    for key, value in state_dict.items():
        if not _kept(key):
            continue
        for prefix in ("backbone.", "keypoint_head."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        out[key] = value
    return out


def fold_batchnorm(weight, gamma, beta, mean, var, bias=None, eps=BN_EPS):
    """An eval-mode BatchNorm after a conv, as one conv with a bias.

    `w' = w * g / sqrt(v + eps)`, `b' = beta + (b - m) * g / sqrt(v + eps)`,
    computed in float64 and returned in the weight's dtype.

    Args:
        weight: array (O, I, kh, kw). The conv weight.
        gamma, beta, mean, var: arrays (O,). BatchNorm weight, bias,
            running mean and running variance.
        bias: array (O,) or `None` (a conv without bias).
        eps: float. BatchNorm epsilon. Defaults to 1e-5.

    Returns:
        `(weight, bias)` of the folded conv.
    """
    scale = np.asarray(gamma, np.float64) / np.sqrt(
        np.asarray(var, np.float64) + eps
    )
    b = 0.0 if bias is None else np.asarray(bias, np.float64)
    folded_w = np.asarray(weight, np.float64) * scale[:, None, None, None]
    shift = (b - np.asarray(mean, np.float64)) * scale
    folded_b = np.asarray(beta, np.float64) + shift
    dtype = np.asarray(weight).dtype
    return folded_w.astype(dtype), folded_b.astype(dtype)


def _official_module(module):
    for pattern, template in _HOURGLASS_MODULES:
        match = re.fullmatch(pattern, module)
        if match is not None:
            return match.expand(template)
    return None


def hourglass_from_mmpose(state_dict):
    """MMPose 0.x `HourglassAENet` keys -> official `PoseNet` keys, BN folded.

    Every `<module>.conv.weight` with a `<module>.bn.*` is folded into
    `<official>.conv.{weight,bias}`; `out_convs` (conv with bias, no
    BatchNorm) are copied. Keys outside the known modules are kept as
    they are, so a strict load reports them.

    Args:
        state_dict: dict of MMPose key -> array.

    Returns:
        dict of official key -> array (34 output channels, as the file).

    Raises:
        ValueError: the file is of another MMPose network (named), or a
            BatchNorm lacks one of its four tensors.
    """
    _check_network(
        state_dict,
        "MMPose Associative Embedding hourglass (HourglassAENet)",
        "hourglass",
        "Load it into the matching model (e.g. an MMPose HigherHRNet file "
        "into `higherhrnet_w32`), or pick the MMPose hourglass file "
        "(`hourglass_ae_coco_512x512-*.pth`).",
    )
    modules, out = {}, {}
    for key, value in state_dict.items():
        if not _kept(key):
            continue
        match = _CONV_MODULE.fullmatch(key)
        official = _official_module(match.group(1)) if match else None
        if official is None:
            out[key] = value
            continue
        _, kind, leaf = match.groups()
        modules.setdefault(official, {})[f"{kind}.{leaf}"] = value
    for official, tensors in modules.items():
        bn = {k[3:]: v for k, v in tensors.items() if k.startswith("bn.")}
        conv_bias = tensors.get("conv.bias")
        if not bn:  # `out_convs`: copied
            for name, value in tensors.items():
                out[f"{official}.{name}"] = value
            continue
        needed = ("weight", "bias", "running_mean", "running_var")
        lacking = [n for n in needed if n not in bn]
        if lacking or "conv.weight" not in tensors:
            names = [f"bn.{n}" for n in lacking]
            if "conv.weight" not in tensors:
                names.append("conv.weight")
            raise ValueError(
                f"Cannot fold the BatchNorm of MMPose module for {official!r}: "
                f"missing {names}. The checkpoint is incomplete; download "
                "it again."
            )
        weight, bias = fold_batchnorm(
            tensors["conv.weight"],
            bn["weight"],
            bn["bias"],
            bn["running_mean"],
            bn["running_var"],
            bias=conv_bias,
        )
        out[f"{official}.conv.weight"] = weight
        out[f"{official}.conv.bias"] = bias
    return out


# Family -> renamer; `kerapose.convert.mmpose.FROM_MMPOSE` takes these.
BOTTOM_UP_FROM_MMPOSE = {
    "higherhrnet": higherhrnet_from_mmpose,
    "hourglass": hourglass_from_mmpose,
}
