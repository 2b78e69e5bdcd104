"""Keypoint <-> target encodings shared by data pipelines and models."""

from kerapose.codecs.msra_heatmap import MSRAHeatmap as MSRAHeatmap
from kerapose.codecs.multi_sigma_heatmap import (
    MultiSigmaHeatmap as MultiSigmaHeatmap,
)

__all__ = ["MSRAHeatmap", "MultiSigmaHeatmap"]
