"""export_tflite: real .tflite files run in the LiteRT interpreter."""

import keras
import numpy as np
import pytest

from tests.export.conftest import INPUT_SHAPE
from tests.export.conftest import on_tf
from tests.export.conftest import peaked_test_hrnet
from tests.export.conftest import real_crops

pytestmark = [pytest.mark.tflite, pytest.mark.tf_only, on_tf]


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("ai_edge_litert")
    return peaked_test_hrnet()


@pytest.fixture(scope="module")
def crops(model):
    return real_crops(model.codec)


@pytest.fixture(scope="module")
def exported(model, crops, tmp_path_factory):
    """One file per quantization (int8 calibrated on the real crops)."""
    from kerapose.export import export_tflite

    folder = tmp_path_factory.mktemp("tflite")
    return {
        q: export_tflite(
            model,
            folder / f"{q}.tflite",
            quantization=q,
            representative_data=crops if q == "int8" else None,
        )
        for q in (None, "fp16", "dynamic", "int8")
    }


def _ops(path):
    from kerapose.export.flatbuffer_ops import operator_names

    return operator_names(path.read_bytes())


def test_float_export_matches_keras(model, crops, exported):
    from kerapose.export import LiteRTModel
    from kerapose.export import verify_tflite

    runner = LiteRTModel(exported[None])
    assert runner.input_shape == (1, *INPUT_SHAPE)
    out = runner(crops[:2])
    assert out.shape == (2, 16, 16, 17)
    report = verify_tflite(
        exported[None],
        model,
        crops,
        max_mean_keypoint_px=0.01,
        max_heatmap_diff=1e-2,
    )
    assert report.passed and report.num_images == len(crops)
    # Float32 rounding only: XNNPACK sums in another order than Keras,
    # which gives about 1e-5 of the peak on random weights.
    assert report.max_heatmap_diff < 1e-4 * report.heatmap_peak
    assert report.mean_keypoint_px == 0.0
    assert set(_ops(exported[None])) <= {
        "ADD",
        "CONV_2D",
        "PAD",
        "RESIZE_NEAREST_NEIGHBOR",
    }


def test_quantized_files_are_smaller_and_close(model, crops, exported):
    from kerapose.export import verify_tflite

    size = {q: p.stat().st_size for q, p in exported.items()}
    assert size["fp16"] < 0.55 * size[None]
    assert size["dynamic"] < 0.35 * size[None]
    assert size["int8"] < 0.35 * size[None]
    for q, rel in (("fp16", 0.01), ("dynamic", 0.05), ("int8", 0.1)):
        report = verify_tflite(
            exported[q], model, crops, max_mean_keypoint_px=None
        )
        assert report.mean_heatmap_diff < rel * report.heatmap_peak, q
        assert report.mean_keypoint_px < 5.0, q


def test_int8_convolutions_are_integer(exported):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(exported["int8"]))
    tensors = interpreter.get_tensor_details()
    convs = [
        op
        for op in interpreter._get_ops_details()
        if op["op_name"] == "CONV_2D"
    ]
    assert convs
    for op in convs:
        dtypes = {tensors[i]["dtype"] for i in op["inputs"][:2]}
        assert dtypes == {np.int8}, op
    # Float in, float out: the app feeds the same crops to every variant.
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    assert "QUANTIZE" in _ops(exported["int8"])


def test_in_graph_decode_matches_keras_predict(model, crops, tmp_path):
    from kerapose.export import LiteRTModel
    from kerapose.export import export_tflite

    path = export_tflite(model, tmp_path / "d.tflite", include_decode=True)
    assert "ARG_MAX" in _ops(path)
    out = LiteRTModel(path)(crops[:6])
    expected = model.predict(crops[:6], verbose=0)
    assert out.shape == (6, 17, 3)
    np.testing.assert_allclose(
        out[..., :2], keras.ops.convert_to_numpy(expected["keypoints"])
    )
    np.testing.assert_allclose(
        out[..., 2],
        keras.ops.convert_to_numpy(expected["scores"]),
        rtol=1e-4,
    )


@pytest.mark.parametrize("refinement", ["quarter", "dark"])
def test_decode_graph_equals_codec_on_ties_and_borders(refinement):
    import tensorflow as tf

    from kerapose.codecs import MSRAHeatmap
    from kerapose.export.decode_graph import decode_in_graph

    codec = MSRAHeatmap(
        input_size=(64, 48), heatmap_size=(16, 12), refinement=refinement
    )
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(3, 16, 12, 5)).astype("float32")
    maps[0, :, :, 0] = 1.0  # a tie everywhere: the first index wins
    maps[1, :, :, 1] = -1.0  # no positive maximum: keypoint at (0, 0)
    maps[2, 0, 11, 2] = 9.0  # a corner maximum: no quarter shift
    out = decode_in_graph(tf.constant(maps), codec).numpy()
    keypoints, scores = codec.decode(maps)
    np.testing.assert_allclose(
        out[..., :2], keras.ops.convert_to_numpy(keypoints), atol=1e-4
    )
    np.testing.assert_allclose(out[..., 2], keras.ops.convert_to_numpy(scores))
    assert tuple(out[1, 1, :2]) == (0.0, 0.0)
    assert tuple(out[2, 2, :2]) == (44.0, 0.0)


def test_multi_unit_rsn_with_second_max_decode_in_graph(tmp_path):
    # The official RSN presets' decode, on a model with unit heatmaps
    # (B, U, h, w, K): the graph decodes the last unit, builtins only.
    from kerapose import zoo
    from kerapose.codecs import MultiSigmaHeatmap
    from kerapose.export import LiteRTModel
    from kerapose.export import export_tflite

    rsn = zoo.load("test_rsn")
    rsn.codec = MultiSigmaHeatmap(
        input_size=(64, 64),
        heatmap_size=(16, 16),
        refinement="second_max",
        blur_kernel_size=5,
        score_scale=1 / 255,
        score_offset=0.5,
    )
    path = export_tflite(rsn, tmp_path / "rsn.tflite", include_decode=True)
    assert "ARG_MAX" in _ops(path)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("f4")
    out = LiteRTModel(path)(x)
    expected = rsn.predict(x, verbose=0)
    assert out.shape == (2, 17, 3)
    np.testing.assert_allclose(
        out[..., :2], keras.ops.convert_to_numpy(expected["keypoints"])
    )
    np.testing.assert_allclose(
        out[..., 2], keras.ops.convert_to_numpy(expected["scores"]), rtol=1e-5
    )


def test_int8_calibrates_on_a_tf_data_pipeline(model, tmp_path):
    import tensorflow as tf

    from kerapose.export import export_tflite
    from kerapose.export import verify_tflite

    images = real_crops(model.codec, 8)
    # (images, heatmaps, weights) triples, as build_top_down_dataset yields.
    dataset = tf.data.Dataset.from_tensor_slices(
        (images, np.zeros((8, 16, 16, 17), "float32"), np.ones((8, 17)))
    ).batch(4)
    path = export_tflite(
        model,
        tmp_path / "i.tflite",
        quantization="int8",
        representative_data=dataset,
    )
    report = verify_tflite(path, model, images, max_mean_keypoint_px=None)
    assert report.mean_heatmap_diff < 0.1 * report.heatmap_peak


@pytest.mark.parametrize("quantization", [None, "int8"])
def test_plain_functional_model_exports_frozen(quantization, tmp_path):
    """A user's own functional model: variables become constants (no
    VAR_HANDLE / READ_VARIABLE ops, BN folded), and int8 calibrates."""
    pytest.importorskip("ai_edge_litert")
    from kerapose.export import LiteRTModel
    from kerapose.export import export_tflite

    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, keras.layers.ReLU()(x))
    images = np.random.default_rng(0).normal(size=(8, *INPUT_SHAPE))
    images = images.astype("float32")
    path = export_tflite(
        model,
        tmp_path / "plain.tflite",
        quantization=quantization,
        representative_data=images if quantization else None,
    )
    ops = set(_ops(path))
    assert not ops & {"VAR_HANDLE", "READ_VARIABLE"}, ops
    assert "MUL" not in ops, ops  # BN folded into the conv
    image = images[:1]
    expected = keras.ops.convert_to_numpy(model(image))
    got = LiteRTModel(path).run_one(image)
    tolerance = 1e-4 if quantization is None else 0.1 * expected.max()
    np.testing.assert_allclose(got, expected, atol=tolerance)
