"""A quantize-aware model exports to a full-integer .tflite file whose
int8 ranges are the learnt ones."""

import numpy as np
import pytest

from tests.export.conftest import on_tf
from tests.export.conftest import peaked_test_hrnet
from tests.export.conftest import real_crops

pytestmark = [pytest.mark.tflite, pytest.mark.tf_only, on_tf]


def test_qat_model_exports_to_int8_and_matches(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    from kerapose.export import export_tflite
    from kerapose.export import verify_tflite
    from kerapose.quantization import quantize_aware

    model = peaked_test_hrnet()
    crops = real_crops(model.codec, 16)
    quantize_aware(model, crops)
    output_range = float(model.qat_output.range_max.numpy())
    path = export_tflite(
        model, tmp_path / "qat.tflite", "int8", representative_data=crops
    )
    report = verify_tflite(path, model, crops, max_mean_keypoint_px=None)
    assert report.mean_heatmap_diff < 0.05 * report.heatmap_peak
    interpreter = Interpreter(model_path=str(path))
    # The output's int8 scale is the learnt range, not a recalibrated one.
    tensors = interpreter.get_tensor_details()
    dequantize = [
        op
        for op in interpreter._get_ops_details()
        if op["op_name"] == "DEQUANTIZE"
    ]
    scale, zero = tensors[dequantize[-1]["inputs"][0]]["quantization"]
    assert scale * (127 - zero) == pytest.approx(output_range, rel=0.02)
    convs = [
        op
        for op in interpreter._get_ops_details()
        if op["op_name"] == "CONV_2D"
    ]
    assert convs and all(
        tensors[op["inputs"][1]]["dtype"] == np.int8 for op in convs
    )
