"""kerapose weight files: HDF5, one dataset per Keras variable path.

Keyed by `variable.path` (the stable layer names), so loading can say
exactly which weights are missing, unexpected or of another shape, and can
leave out the head when the keypoint count changes.
"""

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


def load_weights(model, path, *, skip_prefixes=(), strict=True):
    """Loads a kerapose weight file into `model`, checking every variable.

    Args:
        model: Keras model.
        path: `.weights.h5` written by `save_weights`.
        skip_prefixes: variable-path prefixes not to load (e.g. the head when
            the keypoint count differs); they are reported as skipped.
        strict: bool. If `True` (default), any missing, unexpected or
            mismatched weight raises and nothing is loaded.

    Returns:
        `kerapose.convert.ConversionReport`.
    """
    from kerapose.convert.core import apply_state_dict
    from kerapose.convert.core import identity

    return apply_state_dict(
        model,
        read_weights(path),
        lambda p: (p, identity),
        strict=strict,
        skip_prefixes=skip_prefixes,
    )
