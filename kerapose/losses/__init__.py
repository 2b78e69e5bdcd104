"""Losses (keras.ops only)."""

from kerapose.losses.bottom_up_loss import BottomUpLoss as BottomUpLoss
from kerapose.losses.keypoint_mse import KeypointMSE as KeypointMSE
from kerapose.losses.multi_stage_loss import (
    MultiStageHeatmapLoss as MultiStageHeatmapLoss,
)
from kerapose.losses.ohkm_mse import OHKMMSE as OHKMMSE
from kerapose.losses.yolo_pose_loss import YOLOPoseLoss as YOLOPoseLoss

__all__ = [
    "BottomUpLoss",
    "KeypointMSE",
    "MultiStageHeatmapLoss",
    "OHKMMSE",
    "YOLOPoseLoss",
]
