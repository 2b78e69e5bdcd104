"""TFLite and ONNX export, quantization and verification of the files.

The names below import TensorFlow on first access, so that the `kerapose`
command can build its `export` parser without it.
"""

from kerapose.lazy import lazy_attributes

__all__ = [
    "LiteRTModel",
    "ONNXRuntimeModel",
    "ONNXVerificationError",
    "TFLiteVerificationError",
    "UnsupportedOpsError",
    "VerificationReport",
    "export_onnx",
    "export_tflite",
    "verify_onnx",
    "verify_tflite",
]

# Public name -> the module defining it.
_LAZY = {
    "LiteRTModel": "kerapose.export.litert_runner",
    "ONNXRuntimeModel": "kerapose.export.onnx",
    "ONNXVerificationError": "kerapose.export.onnx",
    "TFLiteVerificationError": "kerapose.export.verify",
    "UnsupportedOpsError": "kerapose.export.tflite",
    "VerificationReport": "kerapose.export.verify",
    "export_onnx": "kerapose.export.onnx",
    "export_tflite": "kerapose.export.tflite",
    "verify_onnx": "kerapose.export.onnx",
    "verify_tflite": "kerapose.export.verify",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
