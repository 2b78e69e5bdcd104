"""The kerapose model zoo: `load`, `list_models`, `describe`.

`list_models`, `describe` and `kerapose_home` read the registry's data and
import no Keras; the rest (building and saving models) imports Keras and
the model families on first access.
"""

from kerapose.lazy import lazy_attributes
from kerapose.zoo.catalog import describe as describe
from kerapose.zoo.catalog import list_models as list_models
from kerapose.zoo.download import download as download
from kerapose.zoo.download import kerapose_home as kerapose_home

__all__ = [
    "describe",
    "download",
    "kerapose_home",
    "list_models",
    "load",
    "load_weights",
    "save_preset",
    "save_weights",
]

# Public names that need Keras -> the module defining them.
_LAZY = {
    "load": "kerapose.zoo.api",
    "save_preset": "kerapose.zoo.api",
    "load_weights": "kerapose.zoo.weights_io",
    "save_weights": "kerapose.zoo.weights_io",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
