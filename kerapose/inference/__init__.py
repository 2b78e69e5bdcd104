"""Inference on images and video: prediction, results, drawing, tracking."""

from kerapose.inference.boxes import read_boxes_file as read_boxes_file
from kerapose.inference.boxes import validate_boxes as validate_boxes
from kerapose.inference.draw import draw_grid as draw_grid
from kerapose.inference.draw import draw_poses as draw_poses
from kerapose.inference.draw import overlay_heatmaps as overlay_heatmaps
from kerapose.inference.fast_forward import FastForward as FastForward
from kerapose.inference.image_io import read_image as read_image
from kerapose.inference.pipeline import DetectionsFile as DetectionsFile
from kerapose.inference.pipeline import PosePipeline as PosePipeline
from kerapose.inference.predict import predict_image as predict_image
from kerapose.inference.results import PoseResult as PoseResult
from kerapose.inference.smoothing import KeypointSmoother as KeypointSmoother
from kerapose.inference.smoothing import OneEuroFilter as OneEuroFilter
from kerapose.inference.tracking import PoseTracker as PoseTracker
from kerapose.inference.video import predict_video as predict_video

__all__ = [
    "FastForward",
    "DetectionsFile",
    "KeypointSmoother",
    "OneEuroFilter",
    "PosePipeline",
    "PoseResult",
    "PoseTracker",
    "draw_grid",
    "draw_poses",
    "overlay_heatmaps",
    "predict_image",
    "predict_video",
    "read_boxes_file",
    "read_image",
    "validate_boxes",
]
