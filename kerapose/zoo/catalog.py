"""Listing and describing the zoo from the registry's data, without Keras."""

import fnmatch
import re

from kerapose.zoo import registry
from kerapose.zoo.download import kerapose_home

_GLOB_CHARS = frozenset("*?[")


def _natural_key(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def matches(name: str, pattern: str) -> bool:
    """Shell-style match when `pattern` has `*`, `?` or `[`, else substring."""
    if _GLOB_CHARS & set(pattern):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern in name


def weights_available(spec: dict | None) -> bool:
    """A tag's weights can be loaded: a converted file in
    `$KERAPOSE_HOME/weights`, or a download URL (fetched and converted on
    the first `load`)."""
    if not spec:
        return False
    if spec.get("url"):
        return True
    return (kerapose_home() / "weights" / spec["file"]).is_file()


def list_models(pattern: str = "*", pretrained: bool = False) -> list:
    """Zoo names matching `pattern`, naturally sorted.

    Args:
        pattern: str. A shell-style pattern (`"hrnet_*"`) or, without `*`,
            `?` or `[`, a substring (`"rsn"`). Defaults to `"*"`.
        pretrained: bool. If `True`, list the `"arch.tag"` names whose
            weights can be loaded (a file in `$KERAPOSE_HOME/weights`, or a
            download URL) instead of architectures.
    """
    names = []
    for arch, preset in registry.read_builtin_presets().items():
        if not pretrained:
            names.append(arch)
            continue
        for tag, info in preset.get("tags", {}).items():
            if weights_available(info.get("weights")):
                names.append(f"{arch}.{tag}")
    return sorted((n for n in names if matches(n, pattern)), key=_natural_key)


def describe(name: str) -> dict:
    """Metadata of a zoo entry: family, paper, tags, metrics, checkpoints."""
    arch, tag, preset = registry.resolve(name)
    info = {"name": arch, **preset["metadata"]}
    tags = preset.get("tags", {})
    info["tags"] = {t: tags[t] for t in ([tag] if tag else tags)}
    info["default_tag"] = registry.default_tag(preset)
    info["config"] = preset["config"]
    return info
