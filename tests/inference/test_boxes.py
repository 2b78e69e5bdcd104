"""Person boxes: checks at every entry point, and box files."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from kerapose import zoo
from kerapose.cli import main as cli
from kerapose.inference import predict_image
from kerapose.inference import read_boxes_file
from kerapose.inference import validate_boxes

IMAGE_SHAPE = (429, 640)  # H, W
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tflite_infer.py"


@pytest.fixture(scope="module")
def model():
    return zoo.load("test_hrnet", compile=False)


def test_validate_boxes_clips_to_the_image():
    boxes = [[-10, -20, 100, 100], [600, 400, 100, 100], [5, 6, 7, 8]]
    np.testing.assert_allclose(
        validate_boxes(boxes, IMAGE_SHAPE),
        [[0, 0, 90, 80], [600, 400, 40, 29], [5, 6, 7, 8]],
    )
    assert validate_boxes([1, 2, 3, 4], IMAGE_SHAPE).shape == (1, 4)
    assert validate_boxes(np.zeros((0, 4)), IMAGE_SHAPE).shape == (0, 4)


@pytest.mark.parametrize(
    "box, message",
    [
        ([10, 10, 0, 20], "zero or less"),
        ([10, 10, 30, -20], "zero or less"),
        ([np.nan, 10, 30, 20], "NaN"),
        ([10, 10, np.inf, 20], "infinite"),
        ([700, 500, 50, 80], "wholly outside the 640x429"),
        ([-100, 10, 100, 20], "wholly outside"),  # touches the left edge
    ],
)
def test_validate_boxes_names_the_bad_box(box, message):
    with pytest.raises(ValueError, match=message) as info:
        validate_boxes([[1, 2, 3, 4], box], IMAGE_SHAPE)
    assert "Person box 1 " in str(info.value)


def test_validate_boxes_bad_shape():
    with pytest.raises(ValueError, match=r"shape \(N, 4\).*\(2, 3\)"):
        validate_boxes(np.zeros((2, 3)), IMAGE_SHAPE)
    with pytest.raises(ValueError, match="numbers"):
        validate_boxes([[1, 2, 3, 4], [1, 2]], IMAGE_SHAPE)


def test_predict_image_checks_boxes(model):
    image = np.zeros((*IMAGE_SHAPE, 3), np.uint8)
    # Were a ZeroDivisionError, and keypoints far outside the image.
    with pytest.raises(ValueError, match="Person box 0.*zero or less"):
        predict_image(model, image, boxes=[[10, 10, 0, 0]])
    with pytest.raises(ValueError, match="Person box 1.*outside"):
        predict_image(model, image, boxes=[[0, 0, 9, 9], [1000, 20, 50, 60]])
    result = predict_image(model, image, boxes=[[600, -10, 100, 110]])
    np.testing.assert_allclose(result.boxes, [[600, 0, 40, 100]])
    with pytest.raises(ValueError, match="box_scores.*2 finite"):
        predict_image(model, image, boxes=[[0, 0, 9, 9]] * 2, box_scores=[1])


def _write(tmp_path, data, name="boxes.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_read_boxes_file_layouts(tmp_path):
    one = {"image_id": 3, "bbox": [1, 2, 3, 4], "score": 0.5}
    boxes, scores = read_boxes_file(_write(tmp_path, one))
    np.testing.assert_allclose(boxes, [[1, 2, 3, 4]])
    np.testing.assert_allclose(scores, [0.5])
    many = [one, {**one, "bbox": [5, 6, 7, 8], "score": 0.25}]
    boxes, scores = read_boxes_file(_write(tmp_path, many))
    assert boxes.shape == (2, 4) and scores.tolist() == [0.5, 0.25]
    boxes, scores = read_boxes_file(_write(tmp_path, [[1, 2, 3, 4.5]]))
    assert boxes.tolist() == [[1, 2, 3, 4.5]] and scores is None
    boxes, _ = read_boxes_file(_write(tmp_path, [1, 2, 3, 4]))
    assert boxes.shape == (1, 4)
    boxes, _ = read_boxes_file(_write(tmp_path, []))
    assert boxes.shape == (0, 4)


@pytest.mark.parametrize(
    "data, message",
    [
        ("[[1, 2, 3, 4]", "not valid JSON"),
        ("", "not valid JSON"),
        ({"box": [1, 2, 3, 4]}, "entry 0 is a dict without a 'bbox'"),
        ([[1, 2, 3, 4], [1, 2, 3]], "entry 1 is not a box of 4 numbers"),
        ([[1, 2, 3, "4"]], "entry 0 is not a box"),
        ("3", "must hold a list"),
        (
            [{"bbox": [1, 2, 3, 4], "score": 1}, {"bbox": [1, 2, 3, 4]}],
            "1 of 2 entries have a 'score'",
        ),
        (
            [
                {"image_id": 1, "bbox": [1, 2, 3, 4]},
                {"image_id": 2, "bbox": [1, 2, 3, 4]},
            ],
            "boxes of 2 images",
        ),
    ],
)
def test_read_boxes_file_errors_name_the_file(tmp_path, data, message):
    path = _write(tmp_path, data, "dets.json")
    with pytest.raises(ValueError, match=message) as info:
        read_boxes_file(path)
    assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_boxes_file(tmp_path / "missing.json")


def test_cli_boxes_file_with_one_dict(tmp_path, capsys):
    import cv2

    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.full((80, 60, 3), 100, np.uint8))
    args = ["predict", "test_hrnet", str(image), "--boxes"]
    boxes = _write(tmp_path, {"bbox": [5, 5, 40, 60], "score": 0.9})
    assert cli([*args, str(boxes)]) == 0
    assert "person 0" in capsys.readouterr().out
    bad = _write(tmp_path, "{oops", "bad.json")
    assert cli([*args, str(bad)]) == 2
    assert "bad.json is not valid JSON" in capsys.readouterr().err


def test_tflite_example_checks_boxes():
    pytest.importorskip("ai_edge_litert")
    spec = importlib.util.spec_from_file_location("tflite_infer", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    clipped = example.check_boxes([[-5.0, 10.0, 50.0, 500.0]], 640, 429)
    np.testing.assert_allclose(clipped, [[0, 10, 45, 419]])
    for box, message in [
        ([700.0, 10.0, 50.0, 50.0], "--box 0 .* wholly outside the 640x429"),
        ([1.0, 1.0, 0.0, 5.0], "positive"),
        ([1.0, np.nan, 2.0, 5.0], "NaN"),
    ]:
        with pytest.raises(SystemExit, match=message):
            example.check_boxes([box], 640, 429)
