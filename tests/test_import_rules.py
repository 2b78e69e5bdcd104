"""Modelling code may use keras.ops only: no backend framework imports."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kerapose"
KERAS_ONLY = (
    "layers",
    "heads",
    "models",
    "losses",
    "codecs",
    "zoo",
    "utils",
    "quantization",
)
FORBIDDEN = ("tensorflow", "jax", "torch")


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def _files():
    for sub in KERAS_ONLY:
        yield from sorted((PACKAGE / sub).rglob("*.py"))


@pytest.mark.parametrize("path", list(_files()), ids=lambda p: p.name)
def test_no_backend_imports(path):
    bad = [m for m in _imports(path) if m.split(".")[0] in FORBIDDEN]
    assert not bad, f"{path} imports {bad}; use keras.ops instead"


def test_scan_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom tensorflow import math\n")
    assert [m for m in _imports(bad) if m.split(".")[0] in FORBIDDEN] == [
        "tensorflow"
    ]


# Same weights and names as Keras's, faster PyTorch training (see
# kerapose/layers/conv2d.py and batch_norm.py).
KERAPOSE_VERSIONS = ("Conv2D", "BatchNormalization")


def _keras_layer_calls(source):
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in KERAPOSE_VERSIONS
            and isinstance(node.func.value, (ast.Name, ast.Attribute))
            and (
                getattr(node.func.value, "id", None) == "layers"
                or getattr(node.func.value, "attr", None) == "layers"
            )
        ):
            yield node.func.attr


@pytest.mark.parametrize("path", list(_files()), ids=lambda p: p.name)
def test_models_use_kerapose_conv_and_batch_norm(path):
    bad = list(_keras_layer_calls(path.read_text()))
    assert not bad, (
        f"{path} builds keras.layers {bad}; use kerapose.layers.Conv2D / "
        "BatchNormalization (same weights, faster PyTorch training)"
    )


def test_layer_scan_sees_a_violation():
    found = _keras_layer_calls(
        "x = keras.layers.Conv2D(8, 3)\ny = layers.BatchNormalization()\n"
        "z = Conv2D(8, 3)\n"
    )
    assert list(found) == ["Conv2D", "BatchNormalization"]
