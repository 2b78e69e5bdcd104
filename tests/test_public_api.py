import importlib

import kerapose
import kerapose.export
from kerapose.api_export import EXPORTED

# The package imports its subpackages lazily: import them all (TensorFlow
# too) so that every export is registered.
for _package in (kerapose, kerapose.export):
    for _name in _package.__all__:
        getattr(_package, _name)


def test_exports_match_init_files():
    for path, symbol in EXPORTED.items():
        module_name, _, attr = path.rpartition(".")
        module = importlib.import_module(module_name)
        assert getattr(module, attr, None) is symbol, (
            f"{path} is exported but not re-exported by {module_name}"
        )
        assert attr in module.__all__, (
            f"{attr} missing from {module_name}.__all__"
        )


def test_all_sorted():
    for name in (
        "",
        ".layers",
        ".models",
        ".codecs",
        ".losses",
        ".zoo",
        ".export",
        ".quantization",
    ):
        module = importlib.import_module("kerapose" + name)
        assert list(module.__all__) == sorted(module.__all__), module.__name__


def test_version():
    assert kerapose.__version__.count(".") == 2
