"""Losses (keras.ops only)."""

from kerapose.losses.keypoint_mse import KeypointMSE as KeypointMSE

__all__ = ["KeypointMSE"]
