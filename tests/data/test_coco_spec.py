"""The COCO reader picks the keypoint spec by the file's keypoint names."""

import json

import numpy as np
import pytest

from kerapose.data.coco import load_coco_instances
from kerapose.data.keypoint_specs import AIC_14
from kerapose.data.keypoint_specs import COCO_17
from kerapose.data.keypoint_specs import CROWDPOSE_14
from kerapose.data.keypoint_specs import HUMANART_21
from kerapose.data.keypoint_specs import MPII_16
from kerapose.data.keypoint_specs import POSETRACK18_17
from tests.conftest import shared_path

# NumPy only: independent of the Keras backend.
pytestmark = pytest.mark.tf_only

# As AIC files spell them (case and spaces differ from the spec's names).
AIC_FILE_NAMES = [
    "Right Shoulder", "Right Elbow", "Right Wrist", "Left Shoulder",
    "Left Elbow", "Left Wrist", "Right Hip", "Right Knee", "Right Ankle",
    "Left Hip", "Left Knee", "Left Ankle", "Head top", "Neck",
]  # fmt: skip


def _keypoints(k, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(5, 40, (k, 2))
    return np.concatenate([xy, np.full((k, 1), 2.0)], 1).ravel().tolist()


def _write(tmp_path, names=None, k=None, skeleton=None, **extra_fields):
    """A one-image file; `extra_fields` adds per-annotation fields."""
    k = len(names) if names is not None else k
    category = {"id": 1, "name": "person"}
    if names is not None:
        category["keypoints"] = names
    if skeleton is not None:
        category["skeleton"] = skeleton
    anns = []
    for i in range(2):
        ann = {
            "id": 10 + i,
            "image_id": 1,
            "category_id": 1,
            "bbox": [2, 2, 40, 40],
            "area": 1600,
            "iscrowd": 0,
            "keypoints": _keypoints(k, i),
        }
        ann.update({key: value[i] for key, value in extra_fields.items()})
        anns.append(ann)
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 48, "height": 48}],
        "annotations": anns,
        "categories": [category],
    }
    (tmp_path / "a.jpg").write_bytes(b"")  # "exists" is all that is checked
    ann_file = tmp_path / "ann.json"
    ann_file.write_text(json.dumps(data))
    return ann_file


def _load(ann_file, **kwargs):
    return load_coco_instances(
        ann_file, ann_file.parent, check_images="exists", **kwargs
    )


def test_aic_names_get_the_aic_spec_not_crowdpose(tmp_path):
    instances, report = _load(_write(tmp_path, AIC_FILE_NAMES))
    assert report.spec is AIC_14
    assert report.spec is not CROWDPOSE_14
    assert "keypoint spec aic_14" in str(report)
    assert report.spec.sigmas[0] == pytest.approx(0.01388152)
    assert report.spec.use_area is False
    # Right shoulder (0) mirrors to left shoulder (3), not to index 1.
    assert report.spec.flip_indices[0] == 3
    assert instances["keypoints"].shape == (2, 14, 2)


def test_posetrack_names_keep_head_bottom_and_top_in_place(tmp_path):
    names = list(POSETRACK18_17.keypoint_names)
    _, report = _load(_write(tmp_path, names))
    assert report.spec is POSETRACK18_17
    flip = report.spec.flip_indices
    assert flip[1] == 1 and flip[2] == 2  # COCO would swap them (eyes)
    assert flip[3] == 4 and flip[15] == 16


def test_unknown_names_build_a_spec_from_the_category(tmp_path):
    names = ["head", "l_hand", "r_hand", "Left Foot", "Right Foot", "tail"]
    skeleton = [[1, 2], [1, 3], [1, 6], [6, 4], [6, 5]]  # 1-based
    _, report = _load(_write(tmp_path, names, skeleton=skeleton))
    spec = report.spec
    assert spec.keypoint_names == tuple(names)
    assert spec.flip_pairs == ((1, 2), (3, 4))
    assert spec.skeleton == ((0, 1), (0, 2), (0, 5), (5, 3), (5, 4))
    assert spec.sigmas is None
    with pytest.raises(ValueError, match="sigmas=") as info:
        spec.require_sigmas("COCO keypoint AP")
    assert "COCO keypoint AP" in str(info.value)

    sigmas = [0.05] * 6
    _, report = _load(_write(tmp_path, names), sigmas=sigmas)
    assert report.spec.require_sigmas() == tuple(sigmas)


def test_unusable_skeleton_is_left_out_with_a_warning(tmp_path):
    names = ["a", "b", "c"]
    with pytest.warns(UserWarning, match="skeleton"):
        _, report = _load(_write(tmp_path, names, skeleton=[[1, 4]]))
    assert report.spec.skeleton == ()


def test_wrong_number_of_sigmas_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="2 sigmas for 3 keypoints"):
        _load(_write(tmp_path, ["a", "b", "c"]), sigmas=[0.1, 0.1])


def test_sigmas_that_contradict_a_builtin_spec_are_an_error(tmp_path):
    ann = _write(tmp_path, list(COCO_17.keypoint_names))
    _, report = _load(ann, sigmas=COCO_17.sigmas)  # the same: fine
    assert report.spec is COCO_17
    with pytest.raises(ValueError, match="dataclasses.replace"):
        _load(ann, sigmas=[0.1] * 17)
    with pytest.raises(ValueError, match="sigmas"):
        _load(ann, spec="coco_17", sigmas=COCO_17.sigmas)


def test_given_spec_with_other_names_warns(tmp_path):
    ann = _write(tmp_path, list(POSETRACK18_17.keypoint_names))
    with pytest.warns(UserWarning, match="head_bottom"):
        _, report = _load(ann, spec="coco_17")
    assert report.spec is COCO_17


def test_without_names_a_unique_count_is_used_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="mpii_16"):
        _, report = _load(_write(tmp_path, k=16))
    assert report.spec is MPII_16


def test_without_names_an_ambiguous_count_asks_for_spec(tmp_path):
    with pytest.raises(ValueError, match="spec=") as info:
        _load(_write(tmp_path, k=14))
    assert "crowdpose_14" in str(info.value) and "aic_14" in str(info.value)
    with pytest.raises(ValueError, match="spec="):
        _load(_write(tmp_path, k=5))
    _, report = _load(_write(tmp_path, k=14), spec="aic_14")
    assert report.spec is AIC_14


def test_keypoint_field_reads_humanart_21(tmp_path):
    kpts21 = [_keypoints(21, seed=5), _keypoints(21, seed=6)]
    ann = _write(tmp_path, list(COCO_17.keypoint_names), keypoints_21=kpts21)
    with pytest.warns(UserWarning, match="humanart_21"):
        instances, report = _load(ann, keypoint_field="keypoints_21")
    assert report.spec is HUMANART_21
    assert instances["keypoints"].shape == (2, 21, 2)
    want = np.asarray(kpts21[0], np.float32).reshape(21, 3)[:, :2]
    np.testing.assert_allclose(instances["keypoints"][0], want)
    # The default field is still the 17-point one.
    instances, report = _load(ann)
    assert report.spec is COCO_17
    assert instances["keypoints"].shape == (2, 17, 2)


def test_missing_keypoint_field_names_the_field(tmp_path):
    ann = _write(tmp_path, list(COCO_17.keypoint_names))
    with pytest.raises(ValueError, match="keypoints_21"):
        _load(ann, keypoint_field="keypoints_21", spec=HUMANART_21)


def test_pipeline_passes_keypoint_field_through(tmp_path):
    from kerapose.codecs import MSRAHeatmap
    from kerapose.data.pipelines import build_top_down_dataset
    from kerapose.testing.fake_data import write_fake_coco

    ann = write_fake_coco(tmp_path, num_images=1, image_size=(48, 64))
    data = json.loads(ann.read_text())
    for a in data["annotations"]:
        a["keypoints_21"] = a["keypoints"] + [0, 0, 0] * 4
    ann.write_text(json.dumps(data))
    codec = MSRAHeatmap(input_size=(32, 32), heatmap_size=(8, 8))
    with pytest.warns(UserWarning, match="humanart_21"):
        ds, report = build_top_down_dataset(
            ann,
            tmp_path / "images",
            codec,
            batch_size=1,
            training=False,
            keypoint_field="keypoints_21",
            verbose=False,
            return_report=True,
        )
    assert report.spec is HUMANART_21
    _, heatmaps, weights = ds.element_spec
    assert heatmaps.shape[-1] == 21 and weights.shape[-1] == 21


@pytest.mark.parametrize(
    "folder, file, want",
    [
        ("coco_sample", "test_coco.json", COCO_17),
        ("coco_sample", "test_coco_wholebody.json", COCO_17),
        ("crowdpose", "test_crowdpose.json", CROWDPOSE_14),
    ],
)
def test_real_samples_get_the_right_spec(folder, file, want):
    root = shared_path("data", folder)
    # The CrowdPose sample's category skeleton is COCO's (out of range for
    # 14 keypoints): a built-in match uses the spec's own skeleton.
    instances, report = load_coco_instances(root / file, root)
    assert report.spec is want
    assert report.kept > 0
    assert instances["keypoints"].shape[1] == want.num_keypoints
