import json

import cv2
import numpy as np
import pytest

from kerapose import zoo
from kerapose.cli import main as cli
from kerapose.inference import predict_image
from kerapose.inference import read_image
from kerapose.inference.affine import apply_matrix
from kerapose.inference.affine import crop_matrix
from tests.conftest import shared_path


def _official_crop_matrix(center, scale, rotation, out_h, out_w):
    """The official three-point construction, for comparison."""
    r = np.deg2rad(rotation)
    src_w = scale[0] * 200
    src_dir = np.array(
        [src_w * -0.5 * -np.sin(r), src_w * -0.5 * np.cos(r)], np.float32
    )
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0], src[1] = center, np.asarray(center) + src_dir
    dst[0] = [out_w * 0.5, out_h * 0.5]
    dst[1] = dst[0] + [0, out_w * -0.5]
    for m in (src, dst):
        d = m[0] - m[1]
        m[2] = m[1] + [-d[1], d[0]]
    return cv2.getAffineTransform(src, dst)


@pytest.mark.parametrize("rotation", [0.0, 30.0, -45.0, 90.0])
def test_crop_matrix_matches_official_construction(rotation):
    center, scale = [100.0, 80.0], [1.2, 1.6]
    ours = crop_matrix(center, scale, rotation, (64, 48))
    official = _official_crop_matrix(center, scale, rotation, 64, 48)
    np.testing.assert_allclose(ours, official, atol=1e-4)
    back = crop_matrix(center, scale, rotation, (64, 48), inverse=True)
    points = np.array([[3.0, 4.0], [40.0, 60.0]])
    np.testing.assert_allclose(
        apply_matrix(apply_matrix(points, ours), back), points, atol=1e-9
    )


def test_read_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_image(tmp_path / "missing.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_text("this is not a jpeg")
    with pytest.raises(ValueError, match="Cannot decode"):
        read_image(bad)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        read_image(np.zeros((4, 4, 2), np.uint8))
    assert read_image(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)


def test_truncated_jpeg_is_a_clear_error(tmp_path):
    image = shared_path("data", "coco_sample", "000000000785.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(image.read_bytes()[:200])
    with pytest.raises(ValueError, match="Cannot decode"):
        read_image(cut)


def test_predict_image_maps_back_to_image_pixels():
    # A model whose heatmap peak is at a known crop location: decode must
    # land on the same place in the image, whatever the box.
    model = zoo.load("test_hrnet")
    image = np.zeros((200, 300, 3), np.uint8)
    result = predict_image(model, image, boxes=[[100, 50, 60, 80]])
    assert result.keypoints.shape == (1, 17, 2)
    assert result.keypoint_scores.shape == (1, 17)
    found = result.keypoint_scores[0] > 0
    # Boxes are padded by 1.25 and made square for a 64x64 input.
    inside = (result.keypoints[0, :, 0] >= 80) & (
        result.keypoints[0, :, 0] <= 180
    )
    assert np.all(inside[found])
    empty = predict_image(model, image, boxes=np.zeros((0, 4)))
    assert len(empty) == 0


def test_person_score_is_the_official_rescoring():
    # Mean of the keypoint scores above 0.2, times the box score: not the
    # mean of all keypoint scores.
    from kerapose.eval.functional import rescore

    model = zoo.load("test_hrnet")
    rng = np.random.default_rng(0)
    for v in model.weights:  # peaked heatmaps: some scores above 0.2
        if v.path.endswith("kernel"):
            std = np.sqrt(2.0 / np.prod(v.shape[:-1]))
            v.assign(rng.normal(0.0, std, v.shape).astype("float32"))
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = [[10, 10, 60, 80], [70, 20, 50, 90]]
    result = predict_image(model, image, boxes=boxes, box_scores=[0.9, 0.5])
    kp = result.keypoint_scores
    assert np.any(kp > 0.2) and np.any(kp <= 0.2)
    np.testing.assert_allclose(
        result.scores, rescore(kp, [0.9, 0.5]), rtol=1e-6
    )
    assert not np.allclose(result.scores, [0.9, 0.5] * kp.mean(axis=1))


def test_predict_image_flip_test_real_image():
    image = shared_path("data", "coco_sample", "000000000785.jpg")
    model = zoo.load("test_hrnet")
    result = predict_image(model, str(image), flip_test=True)
    drawn = result.plot(read_image(image))
    assert drawn.shape == read_image(image).shape
    coco = result.to_coco(785)
    assert len(coco[0]["keypoints"]) == 51


def test_cli_convert_and_predict(tmp_path, capsys):
    ckpt = shared_path("reference", "hrnet_tiny", "model.pth")
    out = tmp_path / "tiny.weights.h5"
    assert cli(["convert", "test_hrnet", str(ckpt), "-o", str(out)]) == 0
    assert "Loaded 247 of 247" in capsys.readouterr().out
    image = tmp_path / "img.jpg"
    cv2.imwrite(str(image), np.full((120, 90, 3), 128, np.uint8))
    drawn, results = tmp_path / "drawn.jpg", tmp_path / "res.json"
    code = cli(
        [
            "predict",
            "test_hrnet",
            str(image),
            "--weights",
            str(out),
            "--out",
            str(drawn),
            "--json",
            str(results),
        ]
    )
    assert code == 0
    assert cv2.imread(str(drawn)).shape == (120, 90, 3)
    assert len(json.loads(results.read_text())) == 1


def test_cli_errors_are_one_line(capsys):
    assert cli(["predict", "hrnet_w99", "x.jpg"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean: hrnet_w48" in err


def test_cli_video(tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(
        str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 64)
    )
    for i in range(3):
        writer.write(np.full((64, 64, 3), 40 * i, np.uint8))
    writer.release()
    out, results = tmp_path / "out.mp4", tmp_path / "res.json"
    assert (
        cli(
            [
                "predict",
                "test_hrnet",
                str(video),
                "--out",
                str(out),
                "--json",
                str(results),
            ]
        )
        == 0
    )
    assert len(json.loads(results.read_text())) == 3
    assert cv2.VideoCapture(str(out)).isOpened()


def test_zoo_load_converts_official_checkpoint_on_the_fly():
    ckpt = shared_path("reference", "hrnet_tiny", "model.pth")
    ref = shared_path("reference", "hrnet_tiny")
    model = zoo.load("test_hrnet", weights=str(ckpt), input_shape=(96, 64, 3))
    x = np.load(ref / "input.npy").transpose(0, 2, 3, 1)
    expected = np.load(ref / "output.npy").transpose(0, 2, 3, 1)
    got = model.predict(x, verbose=0)["heatmaps"]
    assert np.abs(got - expected).max() < 1e-4
    cached = list((zoo.kerapose_home() / "converted").glob("*.weights.h5"))
    assert len(cached) == 1
    again = zoo.load("test_hrnet", weights=str(ckpt), input_shape=(96, 64, 3))
    assert (
        np.abs(again.predict(x, verbose=0)["heatmaps"] - expected).max() < 1e-4
    )


def test_read_image_float_arrays():
    # A 0-1 float image was read as 0-255, i.e. black.
    unit = np.full((4, 5, 3), 0.5, np.float32)
    np.testing.assert_array_equal(read_image(unit), np.full((4, 5, 3), 128))
    np.testing.assert_array_equal(read_image(unit * 255), read_image(unit))
    assert read_image(np.full((2, 2), 1.0)).max() == 255
    assert read_image(np.full((2, 2, 3), 300.0)).max() == 255
    with pytest.raises(ValueError, match="NaN"):
        read_image(np.full((2, 2, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="empty"):
        read_image(np.zeros((0, 4, 3), np.float32))


def test_to_coco_has_no_negative_zero():
    from kerapose.inference import PoseResult

    result = PoseResult(
        keypoints=np.array([[[-0.0001, 2.0]]], np.float32),
        keypoint_scores=np.array([[-0.0002]], np.float32),
        boxes=np.zeros((1, 4), np.float32),
        scores=np.array([-0.0], np.float32),
        image_shape=(4, 4),
    )
    text = result.to_json(1)
    assert "-0.0" not in text
    coco = json.loads(text)[0]
    assert coco["keypoints"] == [0.0, 2.0, 0.0]
    assert coco["score"] == 0.0
