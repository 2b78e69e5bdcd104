"""Bad input to the export path gives errors that say what to do."""

import keras
import numpy as np
import pytest

from tests.export.conftest import INPUT_SHAPE
from tests.export.conftest import on_tf
from tests.export.conftest import peaked_test_hrnet


@pytest.fixture(scope="module")
def model():
    return peaked_test_hrnet()


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="the error is for the JAX and PyTorch backends",
)
def test_other_backends_are_told_how_to_export(model, tmp_path):
    from kerapose.export import export_tflite

    with pytest.raises(RuntimeError, match="KERAS_BACKEND=tensorflow"):
        export_tflite(model, tmp_path / "m.tflite")
    assert not (tmp_path / "m.tflite").exists()


class _Bicubic(keras.layers.Layer):
    def call(self, x):
        return keras.ops.image.resize(x, (32, 32), interpolation="bicubic")


@pytest.mark.tflite
@pytest.mark.tf_only
@on_tf
def test_flex_ops_are_refused(tmp_path):
    from kerapose.export import UnsupportedOpsError
    from kerapose.export import export_tflite

    inputs = keras.Input((16, 16, 3))
    bicubic = keras.Model(inputs, _Bicubic()(inputs))
    with pytest.raises(UnsupportedOpsError, match="ResizeBicubic"):
        export_tflite(bicubic, tmp_path / "b.tflite")
    assert not (tmp_path / "b.tflite").exists()


@pytest.mark.tflite
@pytest.mark.tf_only
@on_tf
def test_representative_data_of_the_wrong_shape(model, tmp_path):
    from kerapose.export import export_tflite

    wrong = np.zeros((4, 32, 32, 3), "float32")
    with pytest.raises(ValueError, match=r"input shape \(64, 64, 3\)"):
        export_tflite(
            model, tmp_path / "w.tflite", "int8", representative_data=wrong
        )
    with pytest.raises(ValueError, match="only used by quantization='int8'"):
        export_tflite(
            model, tmp_path / "w.tflite", "fp16", representative_data=wrong
        )
    with pytest.raises(ValueError, match="`quantization` must be one of"):
        export_tflite(model, tmp_path / "w.tflite", "int4")


@pytest.mark.tflite
@pytest.mark.tf_only
@on_tf
def test_unbuilt_model_is_refused(tmp_path):
    from kerapose.export import export_tflite

    unbuilt = keras.Sequential([keras.layers.Conv2D(4, 3)])
    with pytest.raises(ValueError, match="has not been built"):
        export_tflite(unbuilt, tmp_path / "u.tflite", quantization="int8")


@pytest.mark.tflite
@pytest.mark.tf_only
@on_tf
def test_corrupt_tflite_at_verification(model, tmp_path):
    pytest.importorskip("ai_edge_litert")
    from kerapose.export import export_tflite
    from kerapose.export import verify_tflite

    good = export_tflite(model, tmp_path / "good.tflite").read_bytes()
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00" * 64)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(good[: len(good) // 3])
    for path in (garbage, truncated):
        with pytest.raises(ValueError, match="TFLite"):
            verify_tflite(path, model)
    with pytest.raises(FileNotFoundError):
        verify_tflite(tmp_path / "missing.tflite", model)


@pytest.mark.tflite
@pytest.mark.tf_only
@on_tf
def test_verification_fails_past_the_threshold(model, tmp_path):
    pytest.importorskip("ai_edge_litert")
    from kerapose.export import TFLiteVerificationError
    from kerapose.export import export_tflite
    from kerapose.export import verify_tflite

    path = export_tflite(model, tmp_path / "d.tflite", quantization="dynamic")
    with pytest.raises(TFLiteVerificationError, match="max heatmap") as info:
        verify_tflite(path, model, num_images=4, max_heatmap_diff=1e-6)
    assert info.value.report.max_heatmap_diff > 1e-6
    # Another model of the same shape is caught by the keypoints.
    other = peaked_test_hrnet()
    for v in other.weights:
        if v.path.endswith("kernel"):
            v.assign(v.numpy()[::-1] if v.shape[0] > 1 else -v.numpy())
    with pytest.raises(TFLiteVerificationError, match="displacement"):
        verify_tflite(path, other, num_images=4, max_mean_keypoint_px=1.0)


def test_uint8_calibration_images_are_refused():
    from kerapose.export.representative import calibration_images

    pixels = np.zeros((4, 64, 64, 3), "uint8")
    with pytest.raises(ValueError, match="dtype uint8"):
        calibration_images(pixels, INPUT_SHAPE)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(pixels).batch(2)
    with pytest.raises(ValueError, match="normalised like the training"):
        calibration_images(dataset, INPUT_SHAPE)
    normalised = calibration_images(pixels.astype("float32"), INPUT_SHAPE)
    assert normalised.dtype == np.float32 and len(normalised) == 4
