"""MMPose checkpoints -> the official key layout the family converters take.

MMPose's HRNet is the official network under other module prefixes: the
backbone under `backbone.`, the head conv under `head.` (MMPose 1.x) or
`keypoint_head.` (0.x). Renaming the keys is all a conversion needs.
MMPose's RSN is the official network without conv biases, with its
stages under `backbone.multi_stage_rsn.`, a few modules renamed and the
per-unit heatmap convs moved into the head; `rsn_from_mmpose` renames the
keys, for a kerapose RSN built with `conv_bias=False` (the `rsn_*_mmpose`
presets). MMPose trains RSN on RGB input, the official code on BGR, so the
RSN converter is told not to fold a channel swap in (`CONVERTER_OPTIONS`).
"""

import re

from kerapose.convert.checkpoint_io import as_state_dict
from kerapose.convert.mmpose_bottom_up import BOTTOM_UP_FROM_MMPOSE

# Keys MMPose may store that carry no weights: the input normaliser's
# mean/std (non-persistent in 1.x, dropped by MMPose's own load hook).
DROPPED_PREFIXES = ("data_preprocessor.",)
# MMPose key prefix -> official prefix, tried in order.
HRNET_PREFIXES = (
    ("backbone.", ""),
    ("head.final_layer.", "final_layer."),
    ("keypoint_head.final_layer.", "final_layer."),
)
LAYOUTS = ("official", "mmpose")


# Top-level modules of an MMPose pose estimator's state dict.
MMPOSE_MODULES = ("backbone.", "head.", "keypoint_head.", *DROPPED_PREFIXES)


def detect_layout(state_dict):
    """`"mmpose"` when every key sits under an MMPose estimator module
    (`backbone.`, `head.`, `keypoint_head.`, `data_preprocessor.`) and some
    under `backbone.`, else `"official"`."""
    keys = list(state_dict)
    if any(k.startswith("backbone.") for k in keys) and all(
        k.startswith(MMPOSE_MODULES) for k in keys
    ):
        return "mmpose"
    return "official"


def _put(out, source, new, key, value):
    """Stores `value` under the official key `new`; two MMPose keys mapping
    to one official key mean the file mixes layouts."""
    if new in out:
        raise ValueError(
            f"MMPose keys {source[new]!r} and {key!r} both map to "
            f"{new!r}; the file mixes checkpoint layouts. Keep one head "
            "(`head.` for MMPose 1.x or `keypoint_head.` for 0.x)."
        )
    out[new], source[new] = value, key


def hrnet_from_mmpose(state_dict):
    """Renames MMPose HRNet keys (1.x or 0.x) to the official ones.

    Keys with no known MMPose prefix are kept as they are, so a strict
    load reports them as unexpected.

    Args:
        state_dict: dict of MMPose key -> array.

    Returns:
        dict of official key -> array.

    Raises:
        ValueError: two keys map to the same official key (e.g. a file
            with both the 1.x `head.` and the 0.x `keypoint_head.` head).
    """
    out, source = {}, {}
    for key, value in state_dict.items():
        if key.startswith(DROPPED_PREFIXES):
            continue
        new = key
        for old, official in HRNET_PREFIXES:
            if key.startswith(old):
                new = official + key[len(old) :]
                break
        _put(out, source, new, key, value)
    return out


# MMPose RSN: where the stages live, and the decoder unit modules.
RSN_STAGES = "backbone.multi_stage_rsn."
_RSN_UNIT = re.compile(r"backbone\.multi_stage_rsn\.0\.upsample\.up(\d+)\.")
_RSN_HEAD = re.compile(
    r"(?:head|keypoint_head)\.predict_layers\.(\d+)\.conv_layers\.([01])\."
)
# MMPose RSN module name -> official name, as whole key components.
_RSN_MODULES = {
    "conv_bn3": "conv_bn_relu3",
    "in_skip": "u_skip",
    "out_skip1": "skip1",
    "out_skip2": "skip2",
}
_RSN_USE = (
    "Load it into an RSN built with `conv_bias=False`, e.g. "
    "`kerapose.zoo.load('rsn_50_mmpose', weights=path)` (presets "
    "`rsn_18_mmpose`, `rsn_50_mmpose`, `rsn_50_x2_mmpose`, "
    "`rsn_50_x3_mmpose`)."
)


def is_mmpose_rsn(state_dict):
    """True when the keys are MMPose RSN's (`backbone.multi_stage_rsn.`)."""
    return any(k.startswith(RSN_STAGES) for k in state_dict)


def rsn_from_mmpose(state_dict):
    """Renames MMPose RSN keys (1.x `head.` or 0.x `keypoint_head.`) to the
    official RSN ones.

    `backbone.multi_stage_rsn.<s>.` -> `stage<s>.`, `backbone.top.top.0.`
    -> `top.conv.`, `conv_bn3` -> `conv_bn_relu3`, `in_skip` -> `u_skip`,
    `out_skip1/2` -> `skip1/2`, and the head's
    `predict_layers.<n>.conv_layers.<0|1>.` -> `stage<s>.upsample.up<u>.
    res_conv<1|2>.` with n = s * units + u - 1 (units counted in the
    file). MMPose's convs have no biases, so neither has the result. Keys
    with no known MMPose name are kept, for a strict load to report.

    Args:
        state_dict: dict of MMPose key -> array.

    Returns:
        dict of official key -> array.

    Raises:
        ValueError: the file is not an MMPose RSN one, or mixes the 1.x
            and 0.x heads.
    """
    units = {int(m.group(1)) for k in state_dict if (m := _RSN_UNIT.match(k))}
    if not units:
        raise ValueError(
            "This MMPose checkpoint is not an MMPose RSN one: it has no "
            f"`{RSN_STAGES}0.upsample.up<u>.` keys. Load it into the model "
            "family it belongs to (e.g. an MMPose HRNet file into "
            "`hrnet_w32`)."
        )
    num_units = max(units)
    out, source = {}, {}
    for key, value in state_dict.items():
        if key.startswith(DROPPED_PREFIXES):
            continue
        new = key
        head = _RSN_HEAD.match(key)
        if head:
            stage, unit = divmod(int(head.group(1)), num_units)
            conv = int(head.group(2)) + 1
            new = (
                f"stage{stage}.upsample.up{unit + 1}.res_conv{conv}."
                + key[head.end() :]
            )
        elif key.startswith("backbone.top.top.0."):
            new = "top.conv." + key[len("backbone.top.top.0.") :]
        elif key.startswith(RSN_STAGES):
            stage, rest = key[len(RSN_STAGES) :].split(".", 1)
            parts = [_RSN_MODULES.get(p, p) for p in rest.split(".")]
            new = f"stage{stage}." + ".".join(parts)
        _put(out, source, new, key, value)
    return out


# Family -> MMPose-to-official key renamer.
FROM_MMPOSE = {"hrnet": hrnet_from_mmpose, "rsn": rsn_from_mmpose}
FROM_MMPOSE.update(BOTTOM_UP_FROM_MMPOSE)
# Family -> keyword arguments its converter needs for MMPose files.
# MMPose's RSN is trained on RGB, the official one on BGR.
CONVERTER_OPTIONS = {"rsn": {"input_channels": "rgb"}}
# Families whose MMPose network differs from kerapose's: why.
NOT_CONVERTIBLE = {}


def to_official(checkpoint, family, layout=None):
    """Reads `checkpoint` and returns it in the official key layout.

    Args:
        checkpoint: file path, or dict of key -> array.
        family: str. A converter family (`"hrnet"`, `"rsn"`, ...).
        layout: `"official"`, `"mmpose"` or `None` to detect it from the
            keys (`detect_layout`).

    Returns:
        dict of official key -> array.
    """
    return to_official_with_options(checkpoint, family, layout)[0]


def to_official_with_options(checkpoint, family, layout=None):
    """`to_official`, plus the converter options the layout needs.

    Args:
        checkpoint: file path, or dict of key -> array.
        family: str. A converter family (`"hrnet"`, `"rsn"`, ...).
        layout: `"official"`, `"mmpose"` or `None` to detect it.

    Returns:
        `(state_dict, options)`: dict of official key -> array, and a dict
        of keyword arguments for the family's converter (e.g.
        `{"input_channels": "rgb"}` for an MMPose RSN file).

    Raises:
        ValueError: an unknown layout, an MMPose file of a family with no
            key mapping, or an MMPose RSN file for another family.
    """
    if layout not in (None, *LAYOUTS):
        raise ValueError(
            f"Unknown checkpoint layout {layout!r}; pass one of {LAYOUTS} "
            "or None to detect it."
        )
    if family == "yolo_pose" and layout in (None, "official"):
        # No MMPose layout; its reader also opens the official training
        # files (pickled modules), which `as_state_dict` refuses.
        return checkpoint, {}
    state_dict = as_state_dict(checkpoint)
    layout = layout or detect_layout(state_dict)
    if layout == "official":
        return state_dict, {}
    if family != "rsn" and is_mmpose_rsn(state_dict):
        raise ValueError(
            "This is an MMPose RSN checkpoint (keys under "
            f"`{RSN_STAGES}`), not one of a {family!r} model. {_RSN_USE}"
        )
    if family not in FROM_MMPOSE:
        why = NOT_CONVERTIBLE.get(family, "no key mapping is known.")
        raise ValueError(
            f"MMPose-layout checkpoints (keys under `backbone.`) convert "
            f"for {sorted(FROM_MMPOSE)}, not {family!r}: {why}"
        )
    options = CONVERTER_OPTIONS.get(family, {})
    return FROM_MMPOSE[family](state_dict), dict(options)
