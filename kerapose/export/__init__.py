"""TFLite export, quantization and on-device verification (TensorFlow)."""

from kerapose.export.litert_runner import LiteRTModel as LiteRTModel
from kerapose.export.tflite import UnsupportedOpsError as UnsupportedOpsError
from kerapose.export.tflite import export_tflite as export_tflite
from kerapose.export.verify import (
    TFLiteVerificationError as TFLiteVerificationError,
)
from kerapose.export.verify import VerificationReport as VerificationReport
from kerapose.export.verify import verify_tflite as verify_tflite

__all__ = [
    "LiteRTModel",
    "TFLiteVerificationError",
    "UnsupportedOpsError",
    "VerificationReport",
    "export_tflite",
    "verify_tflite",
]
