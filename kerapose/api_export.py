"""Marks public symbols and registers them for Keras serialization."""

import keras

# Public name -> object, filled by `kerapose_export`; a test checks that the
# hand-written `__init__` re-exports match it.
EXPORTED = {}


def kerapose_export(path):
    """Registers a class or function as `kerapose>Name` and records `path`.

    Args:
        path: str. The public import path, e.g. `"kerapose.layers.ConvBNAct"`.
    """

    def decorator(symbol):
        EXPORTED[path] = symbol
        if isinstance(symbol, type):
            keras.saving.register_keras_serializable(package="kerapose")(symbol)
        return symbol

    return decorator
