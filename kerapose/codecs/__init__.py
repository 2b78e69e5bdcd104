"""Keypoint <-> target encodings shared by data pipelines and models."""

from kerapose.codecs.msra_heatmap import MSRAHeatmap as MSRAHeatmap

__all__ = ["MSRAHeatmap"]
