"""kerapose: a Keras 3 multi-backend model zoo for 2D human pose estimation."""

from kerapose import codecs as codecs
from kerapose import layers as layers
from kerapose import losses as losses
from kerapose import models as models
from kerapose import quantization as quantization
from kerapose import utils as utils
from kerapose import zoo as zoo
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
