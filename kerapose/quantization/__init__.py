"""Quantization-aware training for int8 export, in `keras.ops` only."""

from kerapose.quantization.fake_quant import (
    ActivationQuantizer as ActivationQuantizer,
)
from kerapose.quantization.qat import quantize_aware as quantize_aware

__all__ = ["ActivationQuantizer", "quantize_aware"]
