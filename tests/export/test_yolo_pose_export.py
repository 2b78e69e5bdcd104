"""YOLO-Pose TFLite export: raw logits or in-graph NMS, run in LiteRT."""

import keras
import numpy as np
import pytest

from tests.export.conftest import on_tf

pytestmark = [pytest.mark.tflite, pytest.mark.tf_only, on_tf]


@pytest.fixture(scope="module")
def model():
    """Tiny YOLO-Pose whose scores spread over (0, 1): He-scaled kernels,
    and box convs scaled up with zero bias (the prior bias and small
    logits put every score near 0.25, where rounding decides)."""
    pytest.importorskip("ai_edge_litert")
    from kerapose import zoo

    model = zoo.load("test_yolo_pose", compile=False)
    rng = np.random.default_rng(0)
    for v in model.weights:
        if v.path.endswith("kernel"):
            std = np.sqrt(2.0 / np.prod(v.shape[:-1]))
            v.assign(rng.normal(0.0, std, v.shape).astype("float32"))
        if "/det/" in v.path:
            scale = 0.0 if v.path.endswith("bias") else 300.0
            v.assign(keras.ops.convert_to_numpy(v) * scale)
    return model


@pytest.fixture(scope="module")
def images():
    from kerapose.export.yolo_pose import synthetic_images

    return synthetic_images((128, 128), 8)


@pytest.fixture(scope="module")
def exported(model, images, tmp_path_factory):
    from kerapose.export import export_tflite

    folder = tmp_path_factory.mktemp("yolo_tflite")
    files = {}
    for name, quantization, decode in (
        ("float", None, False),
        ("float_nms", None, True),
        ("int8", "int8", False),
    ):
        files[name] = export_tflite(
            model,
            folder / f"{name}.tflite",
            quantization=quantization,
            include_decode=decode,
            representative_data=images if quantization else None,
        )
    return files


def _ops(path):
    from kerapose.export.flatbuffer_ops import operator_names

    return set(operator_names(path.read_bytes()))


def test_float_raw_file_matches_keras(model, images, exported):
    from kerapose.export import LiteRTModel
    from kerapose.export import verify_tflite
    from kerapose.export.yolo_pose import raw_rows

    out = LiteRTModel(exported["float"])(images[:2])
    expected = keras.ops.convert_to_numpy(raw_rows(model(images[:2])))
    assert out.shape == expected.shape == (2, 3 * (256 + 64 + 16 + 4), 57)
    np.testing.assert_allclose(out, expected, atol=1e-3)
    report = verify_tflite(
        exported["float"], model, images, max_mean_keypoint_px=0.01,
        max_heatmap_diff=1e-3, score_threshold=0.25,
    )  # fmt: skip
    assert report.passed and report.num_detections > 0
    assert report.num_matched >= 0.95 * report.num_detections
    assert "WHILE" not in _ops(exported["float"])


def test_nms_in_graph_matches_keras_decoder(model, images, exported):
    from kerapose.export import LiteRTModel
    from kerapose.export import verify_tflite
    from kerapose.export.yolo_pose import unpack_detections

    ops = _ops(exported["float_nms"])
    assert {"WHILE", "TOPK_V2", "REDUCE_ANY"} <= ops
    assert not any(op.startswith("Flex") for op in ops)
    out = unpack_detections(LiteRTModel(exported["float_nms"])(images))
    expected = {
        k: keras.ops.convert_to_numpy(v)
        for k, v in model.decoder(model(images)).items()
    }
    total = expected["num_detections"].sum()
    assert total > 0
    # XNNPACK's float rounding (1e-5) may flip an IoU or score right at
    # its threshold among this random model's dense overlapping boxes:
    # a few people, never many.
    assert abs(out["num_detections"].sum() - total) <= 0.05 * total
    # The best person of each image is the same.
    np.testing.assert_allclose(
        out["boxes"][:, 0], expected["boxes"][:, 0], atol=1e-2
    )
    np.testing.assert_allclose(
        out["keypoints"][:, 0], expected["keypoints"][:, 0], atol=1e-2
    )
    report = verify_tflite(
        exported["float_nms"], model, images, max_mean_keypoint_px=0.05,
        score_threshold=0.25,
    )  # fmt: skip
    assert report.max_raw_diff is None  # no raw output in this file
    assert report.num_matched >= 0.95 * report.num_detections


def test_int8_raw_file_is_close(model, images, exported):
    from kerapose.export import verify_tflite

    size = exported["int8"].stat().st_size
    assert size < 0.5 * exported["float"].stat().st_size
    assert {"QUANTIZE", "DEQUANTIZE"} <= _ops(exported["int8"])
    report = verify_tflite(
        exported["int8"], model, images, max_mean_keypoint_px=2.0,
        score_threshold=0.25,
    )  # fmt: skip
    assert report.passed, str(report)
    assert report.max_raw_diff < 2.0


def test_int8_with_nms_in_graph_is_refused(model, images, tmp_path):
    from kerapose.export import export_tflite

    with pytest.raises(ValueError, match="include_decode=False"):
        export_tflite(
            model,
            tmp_path / "x.tflite",
            quantization="int8",
            include_decode=True,
            representative_data=images,
        )
