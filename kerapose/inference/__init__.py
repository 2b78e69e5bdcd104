"""Inference on images: crops, prediction, results and drawing."""

from kerapose.inference.draw import draw_poses as draw_poses
from kerapose.inference.image_io import read_image as read_image
from kerapose.inference.results import PoseResult as PoseResult
from kerapose.inference.top_down import predict_image as predict_image

__all__ = ["PoseResult", "draw_poses", "predict_image", "read_image"]
