"""User-facing zoo API: load, list_models, describe, save_preset."""

import copy
import fnmatch
import json
import logging
import re
from pathlib import Path

import keras

from kerapose.zoo import download as _download
from kerapose.zoo import registry
from kerapose.zoo import weights_io

logger = logging.getLogger("kerapose")

_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".npz", ".safetensors")


def _natural_key(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*", pretrained: bool = False) -> list:
    """Zoo names matching a shell-style `pattern`, naturally sorted.

    Args:
        pattern: str. e.g. `"hrnet_*"`. Defaults to `"*"`.
        pretrained: bool. If `True`, list `"arch.tag"` names that have
            weights registered instead of architectures.
    """
    names = []
    for arch, preset in registry.PRESETS.items():
        if pretrained:
            names += [f"{arch}.{t}" for t in preset.get("tags", {})]
        else:
            names.append(arch)
    return sorted(fnmatch.filter(names, pattern), key=_natural_key)


def describe(name: str) -> dict:
    """Metadata of a zoo entry: family, paper, tags, metrics, checkpoints."""
    arch, tag, preset = registry.resolve(name)
    info = {"name": arch, **preset["metadata"]}
    tags = preset.get("tags", {})
    info["tags"] = {t: tags[t] for t in ([tag] if tag else tags)}
    info["default_tag"] = registry.default_tag(preset)
    info["config"] = preset["config"]
    return info


def _set_input_shape(config, image_shape):
    inner = config["config"]
    inner["backbone"]["config"]["image_shape"] = list(image_shape)
    codec = inner.get("codec")
    if codec and "input_size" in codec["config"]:
        c = codec["config"]
        old_h, old_w = c["input_size"]
        hh, hw = c["heatmap_size"]
        h, w = image_shape[:2]
        c["input_size"] = [h, w]
        c["heatmap_size"] = [h * hh // old_h, w * hw // old_w]


def _looks_like_path(name):
    return name.startswith((".", "/", "~")) or "/" in name or "\\" in name


def _weights_file(arch, tag, spec):
    path = _download.kerapose_home() / "weights" / spec["file"]
    if path.exists():
        return path
    if spec.get("url"):
        return _download.download(spec["url"], spec.get("sha256"))
    official = spec.get("official_checkpoint")
    how = (
        f" Convert the official checkpoint '{official}' ({spec['source']}):"
        f"\n    kerapose convert {arch}.{tag} {official} -o {path}"
        if official
        else ""
    )
    raise FileNotFoundError(
        f"No weights for '{arch}.{tag}' at {path} and no download URL is "
        f"registered.{how}\nOr pass weights=None for random initialisation."
    )


def _resolve_weights(arch, tag, preset, weights, sha256):
    """Returns a local file for `weights`, or None for random init."""
    tags = preset.get("tags", {})
    if weights is None:
        return None
    if not isinstance(weights, (str, Path)):
        raise TypeError(
            "`weights` must be None, 'default', a tag, a path or a URL. "
            f"Received: {weights!r}"
        )
    weights = str(weights)
    if "://" in weights:
        return _download.download(weights, sha256)
    if weights == "default" or weights in tags:
        use = (
            tag or registry.default_tag(preset)
            if weights == "default"
            else weights
        )
        if use is None:
            raise ValueError(
                f"'{arch}' has no registered weights; pass weights=None or a "
                "weights file."
            )
        return _weights_file(arch, use, tags[use]["weights"])
    path = Path(weights).expanduser()
    if not path.is_file():
        known = ", ".join(["None", "'default'", *map(repr, tags)])
        raise FileNotFoundError(
            f"Weights file not found: {path}. `weights` can be {known}, a "
            "file path or a URL."
        )
    return path


def _load_into(model, path, preset_keypoints):
    skip = ()
    if getattr(model, "num_keypoints", preset_keypoints) != preset_keypoints:
        skip = model.head_prefixes
    if Path(path).suffix in _CHECKPOINT_SUFFIXES:
        report = _convert_cached(model, path, skip)
    else:
        report = weights_io.load_weights(model, path, skip_prefixes=skip)
    if skip:
        logger.warning(
            "Loaded the backbone only; the head was rebuilt for %d keypoints "
            "and starts from random weights.",
            model.num_keypoints,
        )
    return report


def load(
    name: str,
    weights=None,
    *,
    num_keypoints: int | None = None,
    input_shape=None,
    dtype=None,
    compile: bool = True,
    sha256: str | None = None,
):
    """Builds a pose estimator from the zoo.

    Args:
        name: str. `"hrnet_w32"`, `"hrnet_w32.coco_384x288"` (arch.tag), or
            a directory written by `save_preset()`.
        weights: `None` (random init, the default), `"default"` (the tag's
            weights from `$KERAPOSE_HOME/weights`), a tag, a kerapose
            `.weights.h5` file, an official checkpoint (`.pth`, `.npz`,
            `.safetensors`; converted on the fly), or a URL (with `sha256`).
        num_keypoints: int. If it differs from the preset, a new head is
            built and only the backbone weights are loaded.
        input_shape: tuple `(H, W, 3)`. Overrides the tag's input size.
        dtype: dtype policy for the model's layers.
        compile: bool. Compile with the family's defaults. Defaults to
            `True`.
        sha256: str. Expected digest when `weights` is a URL.

    Returns:
        A `kerapose.models.PoseEstimator`.

    Raises:
        ValueError: unknown name (with close matches) or bad arguments.
        FileNotFoundError: weights that are not available locally.
    """
    if not isinstance(name, (str, Path)):
        raise TypeError(f"`name` must be a str. Received: {name!r}")
    name = str(name)
    if _looks_like_path(name) or Path(name).is_dir():
        return _load_preset_dir(name, weights, compile)
    arch, tag, preset = registry.resolve(name)
    config = copy.deepcopy(preset["config"])
    preset_keypoints = config["config"].get("num_keypoints")
    shape = input_shape
    if shape is None and (tag or registry.default_tag(preset)):
        shape = preset["tags"][tag or registry.default_tag(preset)][
            "image_shape"
        ]
    if shape is not None:
        _set_input_shape(config, shape)
    if num_keypoints is not None:
        config["config"]["num_keypoints"] = num_keypoints
    if dtype is not None:
        config["config"]["dtype"] = dtype
        config["config"]["backbone"]["config"]["dtype"] = dtype
    # Resolve weights first: a missing file should fail before a slow build.
    path = _resolve_weights(arch, tag, preset, weights, sha256)
    model = keras.saving.deserialize_keras_object(config)
    if path is not None:
        _load_into(model, path, preset_keypoints)
    if compile:
        model.compile()
    return model


def _convert_cached(model, path, skip):
    """Converts an official checkpoint, caching the result by its sha256."""
    from kerapose.convert import convert_checkpoint

    digest = _download.sha256_of(path)
    cache = _download.kerapose_home() / "converted" / f"{digest}.weights.h5"
    if cache.is_file():
        return weights_io.load_weights(model, cache, skip_prefixes=skip)
    report = convert_checkpoint(model, path, skip_prefixes=skip)
    if not skip:  # a partial load must not be cached as the whole model
        weights_io.save_weights(model, cache)
    return report


def save_preset(model, directory) -> Path:
    """Writes `config.json`, `model.weights.h5` and `metadata.json`.

    `load(directory)` rebuilds the model with these weights.
    """
    from kerapose.version import __version__

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = keras.saving.serialize_keras_object(model)
    for key in ("compile_config", "build_config"):
        config.pop(key, None)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    weights_io.save_weights(model, directory / "model.weights.h5")
    metadata = {
        "kerapose_version": __version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "class": type(model).__name__,
        "num_weights": len(model.weights),
    }
    (directory / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return directory


def _load_preset_dir(directory, weights, compile):
    directory = Path(directory).expanduser()
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"'{directory}' looks like a path but is not a kerapose preset "
            "directory (no config.json). Zoo names have no slashes; see "
            "kerapose.zoo.list_models()."
        )
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{config_file} is not valid JSON: {e}") from e
    model = keras.saving.deserialize_keras_object(config)
    path = directory / "model.weights.h5" if weights is None else weights
    weights_io.load_weights(model, path)
    if compile:
        model.compile()
    return model
