"""Reusable Keras layers (keras.ops only)."""

from kerapose.layers.conv_bn_act import ConvBNAct as ConvBNAct
from kerapose.layers.hrnet_layers import ExchangeUnit as ExchangeUnit
from kerapose.layers.hrnet_layers import HRModule as HRModule
from kerapose.layers.hrnet_layers import HRNetTransition as HRNetTransition
from kerapose.layers.residual_blocks import BasicBlock as BasicBlock
from kerapose.layers.residual_blocks import Bottleneck as Bottleneck

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ConvBNAct",
    "ExchangeUnit",
    "HRModule",
    "HRNetTransition",
]
