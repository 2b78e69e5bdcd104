"""Official Associative Embedding hourglass (`PoseNet`) checkpoints.

Every official `Conv` module (`<module>.conv.{weight,bias}`, plus
`<module>.bn.*` when built with `bn=True`) is one kerapose `ConvActBN`
unit. The official trainer wraps the network (`Trainer` around
`DataParallel`), so its files carry a `model.module.` prefix; it is
stripped when the checkpoint is read.

`closest_layout` names the known checkpoint layout a foreign file looks
like, for the error of a failed load.
"""

import re

from kerapose.convert.checkpoint_io import as_state_dict
from kerapose.convert.core import BN_LEAVES
from kerapose.convert.core import CheckpointMismatchError
from kerapose.convert.core import apply_state_dict
from kerapose.convert.core import conv_kernel
from kerapose.convert.core import identity

# (kerapose unit path regex, official module template).
UNIT_RULES = (
    (r"pre(\d)", r"pre.\1"),
    (r"stack(\d+)_conv(\d)", r"features.\1.\2"),
    (r"stack(\d+)_output", r"outs.\1"),
    (r"stack(\d+)_merge_pred", r"merge_preds.\1.conv"),
    (r"stack(\d+)_merge_feature", r"merge_features.\1.conv"),
)
# Hourglass units nest like the official modules: `low2/low2/up1`.
_HOURGLASS = re.compile(r"stack(\d+)_hourglass/((?:low2/)*(?:up1|low[123]))")

# Top-level modules of the official state dicts kerapose knows, for naming
# the closest one when a checkpoint does not fit.
_HRNET_BODY = (
    "conv1", "bn1", "conv2", "bn2", "layer1",
    "transition1", "transition2", "transition3", "stage2", "stage3", "stage4",
)  # fmt: skip
KNOWN_LAYOUTS = {
    "hrnet": ("official HRNet", {*_HRNET_BODY, "final_layer"}),
    "omnipose": ("official OmniPose", {*_HRNET_BODY, "waspv2"}),
    "higherhrnet": (
        "official HigherHRNet",
        {*_HRNET_BODY, "final_layers", "deconv_layers"},
    ),
    "hourglass": (
        "official Associative Embedding hourglass",
        {"pre", "features", "outs", "merge_preds", "merge_features"},
    ),
    "rsn": ("official RSN", {"top", *(f"stage{i}" for i in range(8))}),
    "yolo_pose": ("YOLO-Pose", {"model"}),
    "mmpose": (
        "MMPose (keys under `backbone.`)",
        {"backbone", "head", "keypoint_head", "data_preprocessor"},
    ),
}


def closest_layout(state_dict):
    """The known layout whose top-level modules best fit the keys.

    Args:
        state_dict: dict of official key -> array.

    Returns:
        `(family, description)`, or `(None, None)` when nothing fits.
    """
    modules = [key.split(".", 1)[0] for key in state_dict]
    present = set(modules)
    best, best_score = None, 0.0
    for family, (_, names) in KNOWN_LAYOUTS.items():
        covered = sum(m in names for m in modules) / max(len(modules), 1)
        found = len(present & names) / len(names)
        if covered * found > best_score:
            best, best_score = family, covered * found
    if best is None:
        return None, None
    return best, KNOWN_LAYOUTS[best][0]


def load_with_layout_hint(model, state_dict, key_map, family, **kwargs):
    """`apply_state_dict`; a foreign checkpoint's error names its layout."""
    try:
        return apply_state_dict(model, state_dict, key_map, **kwargs)
    except CheckpointMismatchError as error:
        report = error.report
        other, description = closest_layout(state_dict)
        if other is not None and other != family:
            use = "" if other == "mmpose" else f" (`family={other!r}`)"
            report.hint = (
                f"the checkpoint's keys look like the {description} layout"
                f"{use}, not {KNOWN_LAYOUTS[family][0]}. Build the matching "
                "model, or pick another file. " + report.hint
            ).strip()
            raise CheckpointMismatchError(report) from None
        raise


def _module_key(module, layer, leaf):
    if layer == "conv" and leaf == "kernel":
        return f"{module}.conv.weight", conv_kernel
    if layer == "conv" and leaf == "bias":
        return f"{module}.conv.bias", identity
    if layer == "bn" and leaf in BN_LEAVES:
        return f"{module}.bn.{BN_LEAVES[leaf]}", identity
    return None


def hourglass_key_map(path):
    """Kerapose hourglass variable path -> `(official key, transform)`.

    Example: `"stack1_hourglass/low2/low2/up1/conv/kernel"` ->
    `("features.1.0.low2.low2.up1.conv.weight", conv_kernel)`.
    """
    parts = path.rsplit("/", 2)
    if len(parts) != 3:
        return None
    unit, layer, leaf = parts
    match = _HOURGLASS.fullmatch(unit)
    if match is not None:
        inner = match.group(2).replace("/", ".")
        return _module_key(f"features.{match.group(1)}.0.{inner}", layer, leaf)
    for pattern, template in UNIT_RULES:
        match = re.fullmatch(pattern, unit)
        if match is not None:
            return _module_key(match.expand(template), layer, leaf)
    return None


def convert_hourglass(model, checkpoint, strict=True, skip_prefixes=()):
    """Loads an official Associative Embedding checkpoint into kerapose.

    Args:
        model: `BottomUpPoseEstimator` with a `HourglassBackbone`, or the
            backbone alone.
        checkpoint: path to a `.pth`/`.pth.tar`/`.npz`/`.safetensors`
            file, or a dict of official key -> array. A `model.module.` or
            `module.` prefix on every key is dropped.
        strict: bool. Raise, without assigning anything, unless every
            variable gets a tensor of the right shape and every tensor is
            used. Defaults to `True`.
        skip_prefixes: tuple of str. Variable-path prefixes to leave as
            they are.

    Returns:
        `ConversionReport`.

    Raises:
        CheckpointMismatchError: `strict` and the checkpoint does not fit;
            the hint names the layout the file looks like.
    """
    return load_with_layout_hint(
        model,
        as_state_dict(checkpoint),
        hourglass_key_map,
        "hourglass",
        strict=strict,
        skip_prefixes=skip_prefixes,
    )
