"""The one registry of kerapose: zoo names -> presets (data).

Imports no Keras: the built-in families' `<family>_presets.py` files are
data, read here as lone files, so listing and describing the zoo does not
import the model classes (or TensorFlow).
"""

import copy
import difflib
import importlib.util
from pathlib import Path

PRESETS = {}
_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
_builtin_read = False


def register_presets(presets: dict) -> None:
    """Adds presets; a name registered twice is an error (no shadowing).

    The same data registered again (a family package importing the preset
    file this registry already read) is not a second registration.
    """
    for name, preset in presets.items():
        if name in PRESETS and PRESETS[name] != preset:
            raise ValueError(f"Preset '{name}' is registered twice.")
        if "." in name:
            raise ValueError(f"Preset names cannot contain '.': '{name}'.")
        PRESETS[name] = preset


def read_builtin_presets() -> dict:
    """Registers the built-in families' presets (once) and returns them all.

    Each `kerapose/models/<family>/<family>_presets.py` runs as a lone
    file: its package, which imports Keras, is not imported.
    """
    global _builtin_read
    if not _builtin_read:
        for path in sorted(_MODELS_DIR.glob("*/*_presets.py")):
            spec = importlib.util.spec_from_file_location(
                f"_kerapose_presets_{path.stem}", path
            )
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            register_presets(module.presets)
        _builtin_read = True
    return PRESETS


def resolve(name: str):
    """Splits `"arch.tag"` and returns (arch, tag or None, preset copy).

    Raises:
        ValueError: unknown architecture or tag, with close matches.
    """
    read_builtin_presets()
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
