"""Keypoint <-> target encodings shared by data pipelines and models."""

from kerapose.codecs.associative_embedding import (
    AssociativeEmbeddingDecoder as AssociativeEmbeddingDecoder,
)
from kerapose.codecs.msra_heatmap import MSRAHeatmap as MSRAHeatmap
from kerapose.codecs.multi_sigma_heatmap import (
    MultiSigmaHeatmap as MultiSigmaHeatmap,
)
from kerapose.codecs.yolo_pose_decoder import YOLOPoseDecoder as YOLOPoseDecoder

__all__ = [
    "AssociativeEmbeddingDecoder",
    "MSRAHeatmap",
    "MultiSigmaHeatmap",
    "YOLOPoseDecoder",
]
