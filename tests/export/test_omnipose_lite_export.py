"""OmniPose-Lite (the mobile family) exports with builtin ops only,
including its DARK decode in the graph, and quantizes to int8."""

import keras
import numpy as np
import pytest

from tests.export.conftest import on_tf
from tests.export.conftest import real_crops

pytestmark = [pytest.mark.tflite, pytest.mark.tf_only, on_tf]


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("ai_edge_litert")
    from kerapose import zoo

    model = zoo.load("test_omnipose_lite", input_shape=(64, 64, 3))
    # Heatmaps of order 1 (the random init gives ~0), so that peaks and
    # their DARK refinement are well defined.
    rng = np.random.default_rng(0)
    for v in model.weights:
        if v.path.endswith("kernel"):
            std = np.sqrt(2.0 / np.prod(v.shape[:-1]))
            v.assign(rng.normal(0.0, std, v.shape).astype("float32"))
    return model


def test_float_with_dark_decode_in_graph(model, tmp_path):
    from kerapose.export import LiteRTModel
    from kerapose.export import export_tflite
    from kerapose.export.flatbuffer_ops import non_builtin_operators

    assert model.codec.refinement == "dark"
    crops = real_crops(model.codec, 6)
    path = export_tflite(model, tmp_path / "d.tflite", include_decode=True)
    assert non_builtin_operators(path.read_bytes()) == []
    out = LiteRTModel(path)(crops)
    # Eager: tracing predict for this graph costs more than the test.
    keypoints, scores = model.codec.decode(model(crops, training=False))
    np.testing.assert_allclose(
        out[..., :2], keras.ops.convert_to_numpy(keypoints), atol=1e-2
    )
    np.testing.assert_allclose(
        out[..., 2], keras.ops.convert_to_numpy(scores), rtol=1e-3
    )


def test_int8_is_close_to_keras(model, tmp_path):
    from kerapose.export import export_tflite
    from kerapose.export import verify_tflite

    crops = real_crops(model.codec, 16)
    path = export_tflite(
        model, tmp_path / "i.tflite", "int8", representative_data=crops
    )
    report = verify_tflite(path, model, crops, max_mean_keypoint_px=None)
    assert report.mean_heatmap_diff < 0.1 * report.heatmap_peak
