"""Losses (keras.ops only)."""

from kerapose.losses.keypoint_mse import KeypointMSE as KeypointMSE
from kerapose.losses.multi_stage_loss import (
    MultiStageHeatmapLoss as MultiStageHeatmapLoss,
)
from kerapose.losses.ohkm_mse import OHKMMSE as OHKMMSE

__all__ = ["KeypointMSE", "MultiStageHeatmapLoss", "OHKMMSE"]
