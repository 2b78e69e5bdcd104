import json

import numpy as np
import pytest

from kerapose.codecs.msra_heatmap import MSRAHeatmap
from kerapose.data.keypoint_specs import MPII_16
from kerapose.data.mpii import evaluate_mpii_pckh
from kerapose.data.mpii import load_mpii_instances
from kerapose.eval.functional import head_size_from_keypoints
from kerapose.eval.functional import pckh
from kerapose.inference.affine import apply_matrix
from kerapose.inference.affine import crop_matrix
from tests.conftest import shared_path


@pytest.fixture
def sample():
    ann = shared_path("data", "mpii", "test_mpii.json")
    return ann, ann.parent


def test_load_sample(sample):
    ann, images = sample
    raw = json.loads(ann.read_text())
    inst = load_mpii_instances(ann, images)
    assert len(inst["image_path"]) == 5
    assert inst["keypoints"].shape == (5, 16, 2)
    assert inst["visibility"].shape == (5, 16)
    for i, entry in enumerate(raw):
        vis = np.asarray(entry["joints_vis"]) > 0
        np.testing.assert_array_equal(inst["visibility"][i] > 0, vis)
        # 1-based MATLAB pixels -> 0-based; unlabelled joints are zeroed.
        joints = np.asarray(entry["joints"]) - 1.0
        np.testing.assert_allclose(
            inst["keypoints"][i][vis], joints[vis], atol=1e-4
        )
        assert not inst["keypoints"][i][~vis].any()
        # Official HRNet: centre 15 * scale lower, scale x1.25, 0-based.
        s = entry["scale"]
        cx, cy = entry["center"]
        np.testing.assert_allclose(
            inst["center"][i], [cx - 1, cy + 15 * s - 1], rtol=1e-6
        )
        np.testing.assert_allclose(inst["scale"][i], [1.25 * s] * 2, 1e-6)
        assert inst["image_path"][i] == str(images / entry["image"])
    # Two sample people have unlabelled ankles.
    assert int((inst["visibility"] == 0).sum()) == 4


def test_aspect_ratio_enlarges_the_short_side(sample):
    square = load_mpii_instances(*sample)
    tall = load_mpii_instances(*sample, aspect_ratio=0.75)
    np.testing.assert_allclose(tall["scale"][:, 0], square["scale"][:, 0])
    np.testing.assert_allclose(
        tall["scale"][:, 1], square["scale"][:, 1] / 0.75, rtol=1e-6
    )


def test_ground_truth_as_prediction_scores_one(sample):
    inst = load_mpii_instances(*sample)
    gt, vis = inst["keypoints"], inst["visibility"] > 0
    heads = head_size_from_keypoints(gt)
    assert np.all(heads > 0)
    result = pckh(gt, gt, vis, heads, joint_names=MPII_16.keypoint_names)
    assert result["mean"] == 1.0
    per_joint = result["per_joint"]
    assert set(per_joint) == set(MPII_16.keypoint_names)
    assert all(v == 1.0 for v in per_joint.values())
    assert result["visible_count"]["right_ankle"] == 3


class _OracleModel:
    """Predicts the ground truth: checks crop and back-mapping end to end."""

    num_keypoints = 16
    input_shape = (None, 64, 64, 3)

    def __init__(self, instances, offset=0.0):
        self.codec = MSRAHeatmap(input_size=(64, 64), heatmap_size=(16, 16))
        self.heatmaps = []
        for k, c, s, v in zip(
            instances["keypoints"],
            instances["center"],
            instances["scale"],
            instances["visibility"],
        ):
            crop = apply_matrix(k, crop_matrix(c, s, 0.0, (64, 64))) + offset
            self.heatmaps.append(self.codec.encode(crop, v)[0])

    def predict_on_batch(self, crops):
        # Padding rows of a bucket get whatever is left (possibly nothing).
        assert crops.shape[1:] == (64, 64, 3)
        out, self.heatmaps = (
            self.heatmaps[: len(crops)],
            self.heatmaps[len(crops) :],
        )
        return {"heatmaps": np.stack(out)}


def test_evaluate_with_an_oracle(sample):
    inst = load_mpii_instances(*sample)
    result = evaluate_mpii_pckh(
        _OracleModel(inst), *sample, flip_test=False, batch_size=2
    )
    assert result["mean"] == 1.0 and result["num_instances"] == 5
    # Predictions 16 crop pixels off (about a head size) fail.
    off = evaluate_mpii_pckh(
        _OracleModel(inst, offset=16.0), *sample, flip_test=False
    )
    assert off["mean"] < 0.5


def test_evaluate_end_to_end(sample):
    from kerapose import zoo

    model = zoo.load(
        "test_hrnet", input_shape=(64, 64, 3), num_keypoints=16, compile=False
    )
    result = evaluate_mpii_pckh(model, *sample, flip_test=True)
    assert 0.0 <= result["mean"] <= 1.0
    assert list(result["per_joint"]) == list(MPII_16.keypoint_names)
    for value in result["per_joint"].values():
        assert 0.0 <= value <= 1.0
    assert set(result["parts"]) == {
        "Head",
        "Shoulder",
        "Elbow",
        "Wrist",
        "Hip",
        "Knee",
        "Ankle",
    }
    assert result["num_instances"] == 5 and result["num_skipped"] == 0
    assert result["threshold"] == 0.5


def test_evaluate_needs_16_keypoints(sample):
    class Coco:
        num_keypoints = 17

    with pytest.raises(ValueError, match="16 keypoints"):
        evaluate_mpii_pckh(Coco(), *sample)


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "not valid JSON"),
        ('{"image": "a.jpg"}', "JSON list"),
        ('[{"image": "a.jpg", "center": [1, 2]}]', "entry 0 has no 'scale'"),
        (
            '[{"image": "a.jpg", "center": [1, 2], "scale": 1, '
            '"joints": [[1, 2]], "joints_vis": [1]}]',
            "entry 0: 'joints'",
        ),
        (
            '[{"image": "a.jpg", "center": [1], "scale": 1}]',
            "entry 0: 'center'",
        ),
        ('[{"image": "a.jpg", "center": [1, 2], "scale": 0}]', "positive"),
    ],
)
def test_malformed_file(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_mpii_instances(path, tmp_path)


def test_test_split_without_joints(tmp_path):
    path = tmp_path / "test.json"
    path.write_text('[{"image": "a.jpg", "center": [11, 21], "scale": 2}]')
    inst = load_mpii_instances(path, tmp_path)
    assert inst["keypoints"].shape == (1, 16, 2)
    assert not inst["visibility"].any()
    np.testing.assert_allclose(inst["center"][0], [10, 50])
