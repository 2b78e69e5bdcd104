"""Reusable Keras layers (keras.ops only)."""

from kerapose.layers.conv_bn_act import ConvBNAct as ConvBNAct
from kerapose.layers.gaussian_upsampling import (
    GaussianUpsampling as GaussianUpsampling,
)
from kerapose.layers.hrnet_layers import ExchangeUnit as ExchangeUnit
from kerapose.layers.hrnet_layers import HRModule as HRModule
from kerapose.layers.hrnet_layers import HRNetTransition as HRNetTransition
from kerapose.layers.residual_blocks import BasicBlock as BasicBlock
from kerapose.layers.residual_blocks import Bottleneck as Bottleneck
from kerapose.layers.separable_conv import SeparableConv as SeparableConv
from kerapose.layers.wasp import WASPv2 as WASPv2

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ConvBNAct",
    "ExchangeUnit",
    "GaussianUpsampling",
    "HRModule",
    "HRNetTransition",
    "SeparableConv",
    "WASPv2",
]
