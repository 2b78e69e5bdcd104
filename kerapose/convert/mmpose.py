"""MMPose checkpoints -> the official key layout the family converters take.

MMPose's HRNet is the official network under other module prefixes: the
backbone under `backbone.`, the head conv under `head.` (MMPose 1.x) or
`keypoint_head.` (0.x). Renaming the keys is all a conversion needs.
MMPose's RSN differs from the official one (configurable unit count and
branch width, no conv biases); until kerapose's RSN can express it, RSN
files are refused with that reason.
"""

from kerapose.convert.checkpoint_io import as_state_dict

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
        if new in out:
            raise ValueError(
                f"MMPose keys {source[new]!r} and {key!r} both map to "
                f"{new!r}; the file mixes checkpoint layouts. Keep one head "
                "(`head.` for MMPose 1.x or `keypoint_head.` for 0.x)."
            )
        out[new], source[new] = value, key
    return out


# Family -> MMPose-to-official key renamer.
FROM_MMPOSE = {"hrnet": hrnet_from_mmpose}
# Families whose MMPose network differs from kerapose's: why.
NOT_CONVERTIBLE = {
    "rsn": (
        "MMPose RSN checkpoints are not converted yet. MMPose's RSN has no "
        "conv biases and takes `num_units` and `expand_times`, while "
        "kerapose's RSN fixes 4 units and a branch width of "
        "in_channels * 26 // 64, so it cannot be checked against MMPose's "
        "network (kerapose issue 17). Use an official RSN checkpoint."
    ),
}


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
    if layout not in (None, *LAYOUTS):
        raise ValueError(
            f"Unknown checkpoint layout {layout!r}; pass one of {LAYOUTS} "
            "or None to detect it."
        )
    if family == "yolo_pose" and layout in (None, "official"):
        # No MMPose layout; its reader also opens the official training
        # files (pickled modules), which `as_state_dict` refuses.
        return checkpoint
    state_dict = as_state_dict(checkpoint)
    layout = layout or detect_layout(state_dict)
    if layout == "official":
        return state_dict
    if family not in FROM_MMPOSE:
        why = NOT_CONVERTIBLE.get(family, "no key mapping is known.")
        raise ValueError(
            f"MMPose-layout checkpoints (keys under `backbone.`) convert "
            f"for {sorted(FROM_MMPOSE)}, not {family!r}: {why}"
        )
    return FROM_MMPOSE[family](state_dict)
