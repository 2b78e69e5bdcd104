"""Reusable Keras layers (keras.ops only)."""

from kerapose.layers.aligned_resize import (
    AlignedBilinearResize as AlignedBilinearResize,
)
from kerapose.layers.batch_norm import BatchNormalization as BatchNormalization
from kerapose.layers.conv2d import Conv2D as Conv2D
from kerapose.layers.conv_bn_act import ConvBNAct as ConvBNAct
from kerapose.layers.depthwise_conv import DepthwiseConv as DepthwiseConv
from kerapose.layers.gaussian_upsampling import (
    GaussianUpsampling as GaussianUpsampling,
)
from kerapose.layers.hourglass_layers import ConvActBN as ConvActBN
from kerapose.layers.hourglass_layers import HourglassModule as HourglassModule
from kerapose.layers.hrnet_layers import ExchangeUnit as ExchangeUnit
from kerapose.layers.hrnet_layers import HRModule as HRModule
from kerapose.layers.hrnet_layers import HRNetTransition as HRNetTransition
from kerapose.layers.pose_refine_machine import (
    PoseRefineMachine as PoseRefineMachine,
)
from kerapose.layers.residual_blocks import BasicBlock as BasicBlock
from kerapose.layers.residual_blocks import Bottleneck as Bottleneck
from kerapose.layers.residual_steps_block import (
    ResidualStepsBlock as ResidualStepsBlock,
)
from kerapose.layers.separable_conv import SeparableConv as SeparableConv
from kerapose.layers.wasp import WASPv2 as WASPv2
from kerapose.layers.yolo_layers import C3 as C3
from kerapose.layers.yolo_layers import SPP as SPP
from kerapose.layers.yolo_layers import Focus as Focus
from kerapose.layers.yolo_layers import YOLOBottleneck as YOLOBottleneck
from kerapose.layers.yolo_layers import YOLOPoseLevelHead as YOLOPoseLevelHead

__all__ = [
    "AlignedBilinearResize",
    "BasicBlock",
    "BatchNormalization",
    "Bottleneck",
    "C3",
    "Conv2D",
    "ConvActBN",
    "ConvBNAct",
    "DepthwiseConv",
    "ExchangeUnit",
    "Focus",
    "GaussianUpsampling",
    "HRModule",
    "HRNetTransition",
    "HourglassModule",
    "PoseRefineMachine",
    "ResidualStepsBlock",
    "SPP",
    "SeparableConv",
    "WASPv2",
    "YOLOBottleneck",
    "YOLOPoseLevelHead",
]
