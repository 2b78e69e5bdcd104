"""Shared fixtures of the export tests: a tiny HRNet with peaked heatmaps.

The zoo's random init gives heatmaps of about 1e-10 (the official head
init), where every argmax is a tie broken by rounding noise; He-scaled
kernels give peaks of order 100, so keypoint comparisons mean something.
"""

import keras
import numpy as np
import pytest

from tests.conftest import SHARED

on_tf = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="TFLite export needs KERAS_BACKEND=tensorflow",
)
INPUT_SHAPE = (64, 64, 3)
COCO_SAMPLE = SHARED / "data" / "coco_sample"


def peaked_test_hrnet():
    from kerapose import zoo

    model = zoo.load("test_hrnet", input_shape=INPUT_SHAPE, compile=False)
    rng = np.random.default_rng(0)
    for v in model.weights:
        if v.path.endswith("kernel"):
            std = np.sqrt(2.0 / np.prod(v.shape[:-1]))
            v.assign(rng.normal(0.0, std, v.shape).astype("float32"))
    return model


def real_crops(codec, num=16):
    """Normalised person crops of the real COCO sample, else synthetic."""
    from kerapose.export.representative import calibration_images

    shape = (*codec.input_size, 3)
    if not (COCO_SAMPLE / "test_coco.json").exists():
        return calibration_images(None, shape, num)
    from kerapose.data.pipelines import build_top_down_dataset

    dataset = build_top_down_dataset(
        COCO_SAMPLE / "test_coco.json",
        COCO_SAMPLE,
        codec,
        batch_size=8,
        training=False,
        verbose=False,
    )
    return calibration_images(dataset, shape, num)
