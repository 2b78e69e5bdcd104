"""The kerapose model zoo: `load`, `list_models`, `describe`."""

import kerapose.models  # noqa: F401  (registers the presets)
from kerapose.zoo.api import describe as describe
from kerapose.zoo.api import list_models as list_models
from kerapose.zoo.api import load as load
from kerapose.zoo.api import save_preset as save_preset
from kerapose.zoo.download import download as download
from kerapose.zoo.download import kerapose_home as kerapose_home
from kerapose.zoo.weights_io import load_weights as load_weights
from kerapose.zoo.weights_io import save_weights as save_weights

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
