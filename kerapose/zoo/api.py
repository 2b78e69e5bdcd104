"""User-facing zoo API: load, list_models, describe, save_preset."""

import copy
import importlib
import json
import logging
import os
import sys
from pathlib import Path

import keras

import kerapose.models  # noqa: F401  (registers the classes and presets)
from kerapose.zoo import registry
from kerapose.zoo import weights_io
from kerapose.zoo.catalog import describe as describe
from kerapose.zoo.catalog import list_models as list_models

# The module: the package's `download` attribute is the function.
_download = importlib.import_module("kerapose.zoo.download")
logger = logging.getLogger("kerapose")

_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".npz", ".safetensors")


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
    """The tag's converted weights, downloading and converting them once.

    A tag with a download URL is converted again (from the checkpoint
    already downloaded, if still there) when its file was written by an
    older converter of its family.
    """
    path = _download.kerapose_home() / "weights" / spec["file"]
    if spec.get("url"):
        if path.exists() and not _needs_reconversion(path, spec):
            return path
        return _download_and_convert(f"{arch}.{tag}", spec, path)
    if path.exists():
        return path
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


def _converter_version(family):
    """`"<family>-v<version>"`: the converter a conversion was made by."""
    from kerapose.convert import CONVERTER_VERSIONS

    return f"{family}-v{CONVERTER_VERSIONS.get(family, 0)}"


def _model_family(model):
    from kerapose.convert import family_of

    return family_of(model)


def _stamp_path(path):
    """The JSON file next to a converted weights file naming its converter."""
    stem = path.name.removesuffix(".weights.h5")
    return path.with_name(f"{stem}.converter.json")


def _needs_reconversion(path, spec):
    """Whether the converted file `path` of a downloadable tag is stale.

    It is when its stamp names an older converter. A file replaced since
    its stamp was written was converted by hand (as for an official
    checkpoint): kept. A file without a stamp was converted by hand or by a
    kerapose from before converter versions: converted again while its
    checkpoint is here.
    """
    stamp = _stamp_path(path)
    if not stamp.is_file():
        checkpoint = spec["url"].rsplit("/", 1)[-1]
        home = _download.kerapose_home()
        return (home / "checkpoints" / checkpoint).is_file()
    if path.stat().st_mtime_ns > stamp.stat().st_mtime_ns:
        return False
    try:
        converter = str(json.loads(stamp.read_text())["converter"])
    except (OSError, ValueError, KeyError, TypeError):
        return True  # an unreadable stamp: convert again
    family = converter.rpartition("-v")[0]
    return converter != _converter_version(family)


def _converter_layout(name, spec):
    """A tag's `layout` ("official", "mmpose-1.x", "mmpose-0.x") as
    `convert_checkpoint` names it."""
    layout = spec.get("layout", "official")
    if layout == "official" or layout.startswith("mmpose-"):
        return layout.split("-")[0]
    raise ValueError(
        f"'{name}' names checkpoint layout {layout!r}; known: 'official', "
        "'mmpose-1.x', 'mmpose-0.x'."
    )


def _download_and_convert(name, spec, path):
    """Downloads a tag's checkpoint, converts it and saves it at `path`."""
    # Both folders are checked before a byte is downloaded.
    _download.ensure_writable(path.parent)
    _download.ensure_writable(_download.kerapose_home() / "checkpoints")
    try:
        checkpoint = _download.download(
            spec["url"],
            spec.get("sha256"),
            "checkpoints",
            sha256_prefix=spec.get("sha256_prefix"),
        )
    except _download.OfflineError as e:
        raise _download.OfflineError(
            _offline_message(name, spec, path, e)
        ) from e
    _convert_to_file(name, spec, checkpoint, path)
    print(
        f"Converted {checkpoint} into {path}; '{name}' loads from there from "
        "now on (the checkpoint may be deleted).",
        file=sys.stderr,
    )
    return path


def _offline_message(name, spec, path, error):
    url = spec["url"]
    file = url.rsplit("/", 1)[-1]
    checkpoints = _download.kerapose_home() / "checkpoints"
    digest = spec.get("sha256") or f"{spec.get('sha256_prefix')}..."
    return (
        f"Cannot download the weights of '{name}': {error}.\n"
        f"Download\n    {url}\n(sha256 {digest}) and place it in "
        f"{checkpoints}/ as\n    {checkpoints / file}\nor convert it where "
        f"you have it and place the result at {path}:\n"
        f"    kerapose convert {name} {file} -o {path}\n"
        "Then load again. (weights=None builds the model with random "
        "weights.)"
    )


def _convert_to_file(name, spec, checkpoint, path):
    """Converts `checkpoint` for the zoo entry `name` into `path` whole."""
    from kerapose.convert import convert_checkpoint

    layout = _converter_layout(name, spec)
    model = load(name, compile=False)  # the tag's own config, random init
    convert_checkpoint(model, checkpoint, layout=layout)
    # Written aside, then renamed: a failure leaves no partial file.
    tmp = path.with_name(path.name[: -len(".weights.h5")] + ".part.weights.h5")
    try:
        weights_io.save_weights(model, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    # Written after the weights: a file without its stamp is converted
    # again while its checkpoint is here.
    converter = _converter_version(_model_family(model))
    _stamp_path(path).write_text(json.dumps({"converter": converter}) + "\n")


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


def _load_file(model, path, skip):
    if Path(path).suffix in _CHECKPOINT_SUFFIXES:
        return _convert_cached(model, path, skip)
    # kerapose files, and Keras `model.save_weights()` files such as
    # examples/train_top_down.py's best / last.weights.h5.
    return weights_io.load_weights(model, path, skip_prefixes=skip)


def _load_into(model, path, preset_keypoints):
    """Loads all of `path`; without the head only if its size differs.

    A strict load assigns nothing when it fails, so it can be retried.
    """
    from kerapose.convert.core import CheckpointMismatchError

    try:
        return _load_file(model, path, ())
    except (CheckpointMismatchError, weights_io.KerasWeightsMismatchError):
        # Dropping the head is for a keypoint count other than the
        # preset's; otherwise the file is of another model.
        if getattr(model, "num_keypoints", preset_keypoints) == (
            preset_keypoints
        ):
            raise
    report = _load_file(model, path, model.head_prefixes)
    logger.warning(
        "Loaded the backbone only: the weights file has another keypoint "
        "count, so the head was rebuilt for %d keypoints and starts from "
        "random weights.",
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
            weights from `$KERAPOSE_HOME/weights`; when absent, or written
            by an older converter, and the tag has a URL, the checkpoint is
            downloaded once into
            `$KERAPOSE_HOME/checkpoints`, checked, converted and saved
            there), a tag (the same for that tag), a kerapose
            `.weights.h5` file, a Keras `model.save_weights()` file (e.g.
            the `best` / `last.weights.h5` of examples/train_top_down.py;
            build the model as it was trained), an official checkpoint
            (`.pth`, `.npz`, `.safetensors`; converted on the fly and
            cached by its sha256 and the converter version; MMPose
            HRNet files are recognised by their keys), or a URL (with
            `sha256`).
        num_keypoints: int. Builds a head for this many keypoints. The
            weights' head loads when it has this size; when it has another
            (and this differs from the preset's count), only the backbone
            weights load, with a warning.
        input_shape: tuple `(H, W, 3)`. Overrides the tag's input size.
        dtype: dtype policy for the model's layers.
        compile: bool. Compile with the family's defaults. Defaults to
            `True`.
        sha256: str. Expected digest when `weights` is a URL.

    Returns:
        A `kerapose.models.PoseEstimator`.

    Raises:
        ValueError: unknown name (with close matches) or bad arguments.
        FileNotFoundError: weights that are not available locally and
            have no download URL.
        kerapose.zoo.download.OfflineError: (a `ConnectionError`) the
            download server could not be reached; the message says which
            file to place where.
        kerapose.zoo.download.DownloadError: the download failed (HTTP
            error, an HTML page, a wrong sha256); nothing was kept.
        PermissionError: `$KERAPOSE_HOME` cannot be written.
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
    """Converts an official checkpoint, caching the result by its sha256
    and the converter version of the model's family."""
    from kerapose.convert import convert_checkpoint

    digest = _download.sha256_of(path)
    family = _model_family(model)
    folder = _download.kerapose_home() / "converted"
    cache = folder / f"{digest}.{_converter_version(family)}.weights.h5"
    if cache.is_file():
        return weights_io.load_weights(model, cache, skip_prefixes=skip)
    report = convert_checkpoint(model, path, skip_prefixes=skip)
    if not skip:  # a partial load must not be cached as the whole model
        weights_io.save_weights(model, cache)
        # What older converters wrote (before versions: no version in the
        # name) is never loaded again.
        stale = [folder / f"{digest}.weights.h5"]
        stale += folder.glob(f"{digest}.{family}-v*.weights.h5")
        for old in stale:
            if old != cache:
                old.unlink(missing_ok=True)
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
