"""OmniPose-Lite is mobile-ready: TFLite builtin ops only, static shapes."""

import keras
import numpy as np
import pytest

from kerapose import zoo

pytestmark = [
    pytest.mark.tflite,
    pytest.mark.tf_only,
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="TFLite export needs KERAS_BACKEND=tensorflow",
    ),
]


def test_lite_exports_with_builtin_ops_only_and_runs(tmp_path):
    pytest.importorskip("ai_edge_litert")
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from kerapose.export.flatbuffer_ops import non_builtin_operators
    from kerapose.export.flatbuffer_ops import operator_names

    model = zoo.load("test_omnipose_lite", compile=False)
    # He-scaled kernels: the official 0.001 init gives outputs of ~1e-12,
    # too small for a comparison to mean anything.
    rng = np.random.default_rng(0)
    for v in model.weights:
        if v.path.endswith("kernel") and "gaussian" not in v.path:
            std = np.sqrt(2.0 / np.prod(v.shape[:-1]))
            v.assign(rng.normal(0.0, std, v.shape).astype("float32"))
    path = tmp_path / "omnipose_lite.tflite"
    model.export(
        str(path),
        format="litert",
        target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]},
    )
    content = path.read_bytes()
    assert non_builtin_operators(content) == []
    ops = operator_names(content)
    # The Gaussian-modulated upsampling and the WASPv2 waterfall.
    assert {"TRANSPOSE_CONV", "DEPTHWISE_CONV_2D", "MEAN"} <= set(ops)

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    assert tuple(out["shape"][1:]) == (16, 16, 17)
    x = rng.normal(size=(1, 64, 64, 3)).astype("float32")
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(out["index"])
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    scale = np.abs(expected).max()
    assert scale > 1e-3
    np.testing.assert_allclose(got, expected, atol=1e-4 * scale)
