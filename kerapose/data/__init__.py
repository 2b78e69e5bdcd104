"""Datasets, keypoint specifications and synthetic data."""
