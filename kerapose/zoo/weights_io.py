"""kerapose weight files: HDF5, one dataset per Keras variable path.

Keyed by `variable.path` (the stable layer names), so loading can say
exactly which weights are missing, unexpected or of another shape, and can
leave out the head when the keypoint count changes. Keras
`model.save_weights()` files (e.g. the checkpoints of
`examples/train_top_down.py`) load too, through Keras.
"""

import warnings
from pathlib import Path

import h5py
import keras
import numpy as np

FORMAT = "kerapose-weights"
FORMAT_VERSION = 1


def save_weights(model, path) -> Path:
    """Writes every variable of `model` to `path` (`.weights.h5`)."""
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(
            f"Weight files must end in '.weights.h5'. Received: {path}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["model_class"] = type(model).__name__
        f.attrs["keras_backend"] = keras.backend.backend()
        group = f.create_group("vars")
        for v in model.weights:
            if v.path in group:
                raise ValueError(f"Two variables share the path '{v.path}'.")
            group.create_dataset(v.path, data=keras.ops.convert_to_numpy(v))
    return path


def is_keras_weights_file(path) -> bool:
    """A Keras `model.save_weights()` file (not a kerapose one)."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") != FORMAT and "layers" in f
    except OSError:
        return False


def read_weights(path) -> dict:
    """Reads a kerapose weight file into {variable path: array}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No weights file at {path}.")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ValueError(
                    f"{path} is an HDF5 file but not a kerapose weights file "
                    "(written by kerapose.zoo.save_weights). For a Keras "
                    "`model.save_weights()` file use `model.load_weights()`; "
                    "for an official PyTorch checkpoint use kerapose.convert."
                )
            arrays = {}
            f["vars"].visititems(
                lambda name, obj: (
                    arrays.__setitem__(name, np.asarray(obj))
                    if isinstance(obj, h5py.Dataset)
                    else None
                )
            )
            return arrays
    except OSError as e:
        raise ValueError(
            f"Cannot read weights file {path}: it is truncated or not an "
            "HDF5 file. Download or convert it again."
        ) from e


class KerasWeightsMismatchError(ValueError):
    """A Keras `model.save_weights()` file does not fit the model."""


def _layers_under(model, prefixes):
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if layer.weights
        and all(v.path.startswith(prefixes) for v in layer.weights)
    ]


def read_keras_weights(model, path, skip_prefixes=()) -> dict:
    """Loads a Keras `model.save_weights()` file into `model`, or nothing.

    Keras keys these files by layer class and order rather than by layer
    name, so Keras loads them; on failure every variable is set back.

    Args:
        model: the kerapose model the file is meant for.
        path: `.weights.h5` file.
        skip_prefixes: variable-path prefixes not to load (e.g. a head of
            another keypoint count).

    Returns:
        {variable path: array} of the loaded variables.

    Raises:
        KerasWeightsMismatchError: the file does not fit `model`.
    """
    skip_prefixes = tuple(skip_prefixes)
    skip = _layers_under(model, skip_prefixes) if skip_prefixes else None
    before = [keras.ops.convert_to_numpy(v) for v in model.weights]
    try:
        with warnings.catch_warnings():
            # Keras warns per missing group before it raises; the error
            # below says it once.
            warnings.filterwarnings("ignore", "Skipping nested container")
            model.load_weights(str(path), objects_to_skip=skip)
    except ValueError as e:
        for variable, value in zip(model.weights, before):
            variable.assign(value)
        detail = str(e).split("Target variable:")[0].strip()
        raise KerasWeightsMismatchError(
            f"{path} is a Keras weights file (`model.save_weights()`, as "
            "the best/last.weights.h5 of examples/train_top_down.py) that "
            f"does not fit this {type(model).__name__}: {detail[:600]}\n"
            "Build the model as it was trained: the same zoo name, "
            "`num_keypoints` and input size (`kerapose.zoo.load(name, "
            "num_keypoints=K, input_shape=(H, W, 3))`; on the command line "
            "`--num-keypoints` and `--input-size`)."
        ) from None
    return {
        v.path: keras.ops.convert_to_numpy(v)
        for v in model.weights
        if not v.path.startswith(skip_prefixes)
    }


def load_weights(model, path, *, skip_prefixes=(), strict=True):
    """Loads a weight file into `model`, checking every variable.

    Args:
        model: Keras model.
        path: `.weights.h5` written by `save_weights`, or by Keras
            `model.save_weights()` for a model of the same config.
        skip_prefixes: variable-path prefixes not to load (e.g. the head when
            the keypoint count differs); they are reported as skipped.
        strict: bool. If `True` (default), any missing, unexpected or
            mismatched weight raises and nothing is loaded. Keras files
            are always read strictly.

    Returns:
        `kerapose.convert.ConversionReport`.

    Raises:
        CheckpointMismatchError: a kerapose file that does not fit.
        KerasWeightsMismatchError: a Keras file that does not fit.
    """
    from kerapose.convert.core import apply_state_dict
    from kerapose.convert.core import identity

    if Path(path).is_file() and is_keras_weights_file(path):
        arrays = read_keras_weights(model, path, skip_prefixes)
    else:
        arrays = read_weights(path)
    return apply_state_dict(
        model,
        arrays,
        lambda p: (p, identity),
        strict=strict,
        skip_prefixes=skip_prefixes,
    )
