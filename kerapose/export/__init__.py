"""TFLite export, quantization and on-device verification (TensorFlow).

The names below import TensorFlow on first access, so that the `kerapose`
command can build its `export` parser without it.
"""

from kerapose.lazy import lazy_attributes

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


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
