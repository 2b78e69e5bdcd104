"""The one registry of kerapose: zoo names -> presets (data)."""

import copy
import difflib

PRESETS = {}


def register_presets(presets: dict) -> None:
    """Adds presets; a name registered twice is an error (no shadowing)."""
    for name, preset in presets.items():
        if name in PRESETS and PRESETS[name] is not preset:
            raise ValueError(f"Preset '{name}' is registered twice.")
        if "." in name:
            raise ValueError(f"Preset names cannot contain '.': '{name}'.")
        PRESETS[name] = preset


def resolve(name: str):
    """Splits `"arch.tag"` and returns (arch, tag or None, preset copy).

    Raises:
        ValueError: unknown architecture or tag, with close matches.
    """
    arch, _, tag = name.partition(".")
    if arch not in PRESETS:
        close = difflib.get_close_matches(arch, PRESETS, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown model '{name}'.{hint} See kerapose.zoo.list_models() "
            "for all names."
        )
    preset = copy.deepcopy(PRESETS[arch])
    tags = preset.get("tags", {})
    if tag and tag not in tags:
        known = ", ".join(tags) or "none"
        raise ValueError(
            f"Unknown tag '{tag}' for model '{arch}'. Known tags: {known}."
        )
    return arch, tag or None, preset


def default_tag(preset: dict):
    """The first tag of a preset, or None for presets without tags."""
    return next(iter(preset.get("tags", {})), None)
