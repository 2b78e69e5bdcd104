"""kerapose: a Keras 3 multi-backend model zoo for 2D human pose estimation.

Subpackages are imported on first access (`kerapose.zoo`, `kerapose.models`,
...), so `import kerapose` and the `kerapose list` command do not pay for
importing Keras and TensorFlow.
"""

import importlib

from kerapose.version import __version__ as __version__

__all__ = [
    "__version__",
    "codecs",
    "layers",
    "losses",
    "models",
    "quantization",
    "utils",
    "zoo",
]

# Subpackages reachable as attributes; the public ones are in `__all__`.
_SUBPACKAGES = frozenset(__all__[1:]) | {
    "convert",
    "data",
    "eval",
    "export",
    "inference",
    "testing",
}


def __getattr__(name):
    if name in _SUBPACKAGES:
        # import_module binds the submodule as an attribute of this package,
        # so __getattr__ runs once per name.
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBPACKAGES)
