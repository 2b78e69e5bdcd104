"""Single-stage inference: letterbox, detections back to image pixels."""

import keras
import numpy as np
import pytest

from kerapose.inference import PoseResult
from kerapose.inference.yolo_pose import PAD_VALUE
from kerapose.inference.yolo_pose import detections_to_results
from kerapose.inference.yolo_pose import letterbox
from kerapose.inference.yolo_pose import predict_image_single_stage
from kerapose.models.yolo_pose.yolo_pose_estimator import STRIDES
from kerapose.models.yolo_pose.yolo_pose_estimator import YOLO_POSE_ANCHORS
from tests.conftest import shared_path

K = 17


@pytest.fixture(scope="module")
def model():
    from kerapose import zoo

    return zoo.load("test_yolo_pose", compile=False)  # 128 x 128 input


def test_letterbox_geometry_on_a_wide_image():
    # 50 x 80 into 128 x 128: scale 1.6 -> 80 x 128, 24 grey rows above
    # and below.
    image = np.full((50, 80, 3), 7, np.uint8)
    out, lb = letterbox(image, (128, 128))
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    assert (lb.scale, lb.left, lb.top) == (1.6, 0, 24)
    assert np.all(out[:24] == PAD_VALUE) and np.all(out[104:] == PAD_VALUE)
    assert np.all(out[24:104] == 7)
    # Odd padding: the extra grey pixel goes after the image.
    out, lb = letterbox(np.zeros((128, 3, 3), np.uint8), (128, 128))
    assert (lb.left, out.shape) == (62, (128, 128, 3))
    assert np.all(out[:, :62] == PAD_VALUE) and np.all(out[:, 65:] == PAD_VALUE)


def test_keypoint_in_raw_output_maps_back_to_image_pixel():
    # A 300 x 500 (H x W) image in a 128 x 128 input: scale 0.256, the
    # image spans rows 25.6 ... 102.4 (top pad 25). Image pixel (400, 100)
    # is input pixel (102.4, 50.6). Put keypoint 3 there through the raw
    # logits of P3 cell (row 6, column 12): x = (2t - 0.5 + 12) * 8.
    from kerapose.codecs import YOLOPoseDecoder

    _, lb = letterbox(np.zeros((300, 500, 3), np.uint8), (128, 128))
    assert (lb.scale, lb.left, lb.top) == (0.256, 0, 25)
    u, v = 400 * 0.256, 100 * 0.256 + 25
    levels = [
        np.full((1, 128 // s, 128 // s, 3, 6 + 3 * K), -10.0, np.float32)
        for s in STRIDES
    ]
    fields = np.zeros(6 + 3 * K, np.float32)
    fields[4:6] = 8.0
    fields[6 + 9 : 6 + 12] = ((u / 8 - 12 + 0.5) / 2, (v / 8 - 6 + 0.5) / 2, 2)
    levels[0][0, 6, 12, 0] = fields
    decoder = YOLOPoseDecoder(YOLO_POSE_ANCHORS, STRIDES, max_detections=4)
    run = decoder
    if keras.backend.backend() == "jax":  # eager JAX compiles op by op
        import jax

        run = jax.jit(decoder)
    out = {k: keras.ops.convert_to_numpy(v) for k, v in run(levels).items()}
    (result,) = detections_to_results(out, [lb])
    assert len(result) == 1 and result.image_shape == (300, 500)
    np.testing.assert_allclose(result.keypoints[0, 3], [400, 100], atol=1e-3)
    # The box: centre (100, 52) input, anchor 19 x 27, mapped and clipped.
    x, y, w, h = result.boxes[0]
    np.testing.assert_allclose([x + w / 2, w], [100 / 0.256, 19 / 0.256])
    np.testing.assert_allclose(
        [y, h], [(52 - 13.5 - 25) / 0.256, 27 / 0.256], atol=1e-3
    )


def test_predict_on_a_coco_image(model):
    path = shared_path("data", "coco_sample", "000000000785.jpg")
    result = predict_image_single_stage(model, path, score_threshold=0.001)
    assert isinstance(result, PoseResult)
    n = len(result)
    assert 0 < n <= 100 and result.image_shape == (425, 640)
    assert result.keypoints.shape == (n, K, 2)
    assert result.keypoint_scores.shape == (n, K)
    assert result.boxes.shape == (n, 4) and result.scores.shape == (n,)
    assert np.all(result.scores > 0.001) and np.all(np.diff(result.scores) <= 0)
    x, y, w, h = result.boxes.T
    assert np.all((x >= 0) & (y >= 0) & (w >= 0) & (h >= 0))
    assert np.all((x + w <= 640 + 1e-3) & (y + h <= 425 + 1e-3))
    assert np.all(result.keypoints >= 0)
    assert np.all(result.keypoints <= np.array([640, 425]) + 1e-3)
    # No score reaches 1: nothing left.
    empty = predict_image_single_stage(model, path, score_threshold=1.0)
    assert len(empty) == 0 and empty.keypoints.shape == (0, K, 2)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 3000, 3), (2500, 3500, 3)])
def test_tiny_strip_and_large_images(model, shape):
    image = np.random.default_rng(0).integers(0, 255, shape, np.uint8)
    result = predict_image_single_stage(model, image, score_threshold=0.001)
    assert result.image_shape == shape[:2]
    for values in (result.keypoints, result.boxes, result.scores):
        assert np.all(np.isfinite(values))
    h, w = shape[:2]
    assert np.all(result.keypoints <= np.array([w, h]))
    assert np.all(result.boxes[:, 0] + result.boxes[:, 2] <= w + 1e-3)


def test_bad_arguments_are_refused(model):
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="flip_test"):
        predict_image_single_stage(model, image, flip_test=True)
    with pytest.raises(ValueError, match="score_threshold"):
        predict_image_single_stage(model, image, score_threshold=2.0)
