"""TFLite export, quantization and on-device verification (TensorFlow).

The names below import TensorFlow on first access, so that the `kerapose`
command can build its `export` parser without it.
"""

import importlib

__all__ = [
    "LiteRTModel",
    "TFLiteVerificationError",
    "UnsupportedOpsError",
    "VerificationReport",
    "export_tflite",
    "verify_tflite",
]

# Public name -> the module defining it.
_LAZY = {
    "LiteRTModel": "kerapose.export.litert_runner",
    "TFLiteVerificationError": "kerapose.export.verify",
    "UnsupportedOpsError": "kerapose.export.tflite",
    "VerificationReport": "kerapose.export.verify",
    "export_tflite": "kerapose.export.tflite",
    "verify_tflite": "kerapose.export.verify",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
