"""The bottom-up tf.data pipeline on the real COCO sample images.

The reference is written here from the official HigherHRNet recipe
(``_get_affine_matrix``, ``HeatmapGenerator``, ``JointsGenerator``,
``get_mask``) with NumPy, OpenCV and pycocotools.
"""

import json

import cv2
import keras
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from kerapose.data.bottom_up import BottomUpAugmentConfig
from kerapose.data.bottom_up import bottom_up_dataset_from_records
from kerapose.data.bottom_up import make_bottom_up_dataset
from kerapose.data.bottom_up_targets import decode_ignore_mask
from kerapose.data.bottom_up_targets import ignore_regions_to_runs
from kerapose.data.coco_images import load_coco_images
from kerapose.data.keypoint_specs import COCO_17
from kerapose.data.transforms import IMAGENET_MEAN
from kerapose.data.transforms import IMAGENET_STD
from kerapose.losses import BottomUpLoss
from kerapose.testing.test_case import to_numpy
from tests.conftest import shared_path

# tf.data / NumPy only: the Keras backend changes nothing here, so one
# backend's pass covers it (the loss tests feed every backend).
pytestmark = [
    pytest.mark.tf_only,
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="tf.data pipeline: runs in the TensorFlow pass only",
    ),
]

INPUT = 128
OUTPUTS = (32, 64)
NO_AUGMENT = BottomUpAugmentConfig(
    max_rotation=0, min_scale=1, max_scale=1, max_translate=0, flip_prob=0
)


@pytest.fixture(scope="module")
def coco():
    folder = shared_path("data", "coco_sample")
    ann = folder / "test_coco.json"
    records, _ = load_coco_images(ann, folder)
    return ann, folder, records


def _batches(ds):
    return [
        (to_numpy(x), {k: to_numpy(v) for k, v in y.items()}) for x, y in ds
    ]


def _concat(batches):
    images = np.concatenate([b[0] for b in batches])
    targets = {
        k: np.concatenate([b[1][k] for b in batches]) for k in batches[0][1]
    }
    return images, targets


def _official_matrix(center, scale, res, rot=0.0):
    """The official ``_get_affine_matrix`` (3x3)."""
    h = 200.0 * scale
    t = np.array(
        [
            [res / h, 0, res * (-center[0] / h + 0.5)],
            [0, res / h, res * (-center[1] / h + 0.5)],
            [0, 0, 1],
        ]
    )
    if rot != 0:
        rad = -rot * np.pi / 180
        rot_mat = np.array(
            [
                [np.cos(rad), -np.sin(rad), 0],
                [np.sin(rad), np.cos(rad), 0],
                [0, 0, 1],
            ]
        )
        t_mat = np.eye(3)
        t_mat[:2, 2] = -res / 2
        t_inv = np.eye(3)
        t_inv[:2, 2] = res / 2
        t = t_inv @ rot_mat @ t_mat @ t
    return t[:2]


def _eval_matrix(size, res, scale_type="short"):
    h, w = size
    side = min(h, w) if scale_type == "short" else max(h, w)
    return _official_matrix((w / 2, h / 2), side / 200, res)


def _official_heatmaps(points, res, sigma=2):
    """``HeatmapGenerator`` (square map) -> (res, res, K)."""
    size = 6 * sigma + 3
    x = np.arange(0, size, 1, float)
    y = x[:, None]
    g = np.exp(-((x - 3 * sigma - 1) ** 2 + (y - 3 * sigma - 1) ** 2) / 8)
    hms = np.zeros((points.shape[1], res, res), np.float32)
    for person in points:
        for k, pt in enumerate(person):
            if pt[2] > 0:
                x, y = int(pt[0]), int(pt[1])
                if x < 0 or y < 0 or x >= res or y >= res:
                    continue
                ul = (
                    int(np.round(x - 3 * sigma - 1)),
                    int(np.round(y - 3 * sigma - 1)),
                )
                br = (
                    int(np.round(x + 3 * sigma + 2)),
                    int(np.round(y + 3 * sigma + 2)),
                )
                c, d = max(0, -ul[0]), min(br[0], res) - ul[0]
                a, b = max(0, -ul[1]), min(br[1], res) - ul[1]
                cc, dd = max(0, ul[0]), min(br[0], res)
                aa, bb = max(0, ul[1]), min(br[1], res)
                hms[k, aa:bb, cc:dd] = np.maximum(
                    hms[k, aa:bb, cc:dd], g[a:b, c:d]
                )
    return hms.transpose(1, 2, 0)


def _official_joints(points, res):
    """``JointsGenerator``, one entry per joint position k -> (P, K, 2)."""
    out = np.zeros(points.shape[:2] + (2,), np.int32)
    for p, person in enumerate(points):
        for k, pt in enumerate(person):
            x, y = int(pt[0]), int(pt[1])
            if pt[2] > 0 and 0 <= x < res and 0 <= y < res:
                out[p, k] = (y * res + x, 1)
    return out


def _transform(keypoints, matrix):
    """(P, K, 3) image keypoints -> map keypoints, visibility kept."""
    xy = keypoints[..., :2] @ matrix[:, :2].T + matrix[:, 2]
    return np.concatenate([xy, keypoints[..., 2:]], -1)


def _on_pixel_edge(points):
    """(P, K) labelled points whose truncation hinges on float rounding
    (COCO's integer keypoints often map onto whole output pixels)."""
    frac = np.abs(points[..., :2] - np.round(points[..., :2]))
    return (points[..., 2] > 0) & (frac < 1e-3).any(-1)


def _rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _pixels(images):
    return (images * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)) * 255


def test_eval_targets_are_the_official_ones(coco):
    ann, folder, records = coco
    ds, report = make_bottom_up_dataset(
        ann, folder, INPUT, OUTPUTS, batch_size=3, training=False
    )
    assert report.images_kept == 4
    images, targets = _concat(_batches(ds))  # batches of 3 and 1
    assert images.shape == (4, INPUT, INPUT, 3)
    for i, path in enumerate(records["image_path"]):
        size = records["image_size"][i]
        kpts = records["keypoints"][i]
        for r, res in enumerate(OUTPUTS):
            points = _transform(kpts, _eval_matrix(size, res))
            edge = _on_pixel_edge(points)
            assert edge.sum() < 10
            got = targets[f"heatmaps_{r}"][i]
            want = _official_heatmaps(points, res)
            assert want.max() == 1.0
            exact = ~edge.any(0)  # joints without an edge case
            np.testing.assert_allclose(
                got[..., exact], want[..., exact], atol=1e-6
            )
            if r == 0:
                joints = _official_joints(points, res)
                mine = targets["joints"][i]
                np.testing.assert_array_equal(mine[~edge], joints[~edge])
                # Edge cases land one pixel either way at most.
                off = np.abs(
                    np.stack(np.divmod(mine[edge][:, 0], res))
                    - np.stack(np.divmod(joints[edge][:, 0], res))
                )
                assert off.max(initial=0) <= 1
                # Each labelled joint index points at its heatmap's peak.
                p, k = np.nonzero(mine[..., 1])
                flat = got.reshape(-1, got.shape[-1])
                np.testing.assert_array_equal(flat[mine[p, k, 0], k], 1.0)
        # The image is the official warp of the decoded JPEG.
        want = cv2.warpAffine(
            _rgb(path), _eval_matrix(size, INPUT), (INPUT, INPUT)
        )
        diff = np.abs(_pixels(images[i]) - want)
        assert diff.mean() < 1.0 and np.percentile(diff, 99) < 8


def _angle_and_scale(matrix):
    det = np.linalg.det(matrix[:, :2])
    flip = det < 0
    col = matrix[:, 0].copy()
    col[0] *= -1 if flip else 1  # the mirror negates the x row only
    return np.degrees(np.arctan2(-col[1], col[0])), np.sqrt(abs(det)), flip


def test_augmented_targets_follow_the_drawn_transform(coco):
    _, folder, records = coco
    ds = bottom_up_dataset_from_records(
        records, COCO_17, INPUT, OUTPUTS, batch_size=2, seed=3,
        include_matrix=True,
    )  # fmt: skip
    epochs = [_concat(_batches(ds)) for _ in range(2)]
    flips, shifts = [], []
    for images, targets in epochs:
        for i, matrix in enumerate(targets["input_matrix"]):
            # Which image: the shuffle order is unknown; the matrix's
            # scale tells (short side * [0.75, 1.5] fills the input).
            angle, zoom, flip = _angle_and_scale(matrix)
            flips.append(flip)
            assert abs(angle) <= 30.0 + 1e-3
            matches = [
                j
                for j, size in enumerate(records["image_size"])
                if 1 / 1.5 - 1e-4 <= zoom * min(size) / INPUT <= 1 / 0.75 + 1e-4
                and _same_image(images[i], records["image_path"][j], matrix)
            ]
            assert len(matches) == 1
            j = matches[0]
            # The input centre shows the image centre moved by whole pixels
            # in [-t, t), t = floor(40 * side / 200).
            height, width = records["image_size"][j]
            centre = np.array([INPUT / 2 - (1 if flip else 0), INPUT / 2])
            linear = matrix[:, :2]
            source = np.linalg.solve(linear, centre - matrix[:, 2])
            shift = source - (width / 2, height / 2)
            limit = np.floor(40 * INPUT / zoom / 200)
            assert np.abs(shift - np.round(shift)).max() < 0.02
            assert (shift >= -limit - 0.02).all() and (shift < limit).all()
            shifts.append(shift)
            kpts = records["keypoints"][j]
            if flip:
                kpts = kpts[:, COCO_17.flip_indices]
            for r, res in enumerate(OUTPUTS):
                ratio = res / INPUT
                # Flipped: x_r = r - 1 - ratio * (S - 1 - x_S).
                m = matrix * ratio
                m[0, 2] += (ratio - 1) if flip else 0.0
                points = _transform(kpts, m)
                near = np.abs(points[..., :2] - np.round(points[..., :2]))
                points[..., 2] *= (near > 1e-3).all(-1)  # skip pixel edges
                peaks = _official_joints(points, res)
                p, k = np.nonzero(peaks[..., 1])
                flat = targets[f"heatmaps_{r}"][i].reshape(-1, 17)
                np.testing.assert_array_equal(flat[peaks[p, k, 0], k], 1.0)
                if r == 0:
                    got = targets["joints"][i]
                    np.testing.assert_array_equal(got[p, k], peaks[p, k])
    assert any(flips) and not all(flips)
    assert np.abs(shifts).max() >= 1  # some translation
    # A new epoch draws new transforms.
    assert not np.allclose(
        epochs[0][1]["input_matrix"], epochs[1][1]["input_matrix"]
    )


def _same_image(image, path, matrix):
    want = cv2.warpAffine(_rgb(path), matrix, (INPUT, INPUT))
    return np.abs(_pixels(image) - want).mean() < 1.0


def test_flip_swaps_joints(coco):
    _, folder, records = coco

    def run(flip_prob):
        config = BottomUpAugmentConfig(
            max_rotation=0, min_scale=1, max_scale=1, max_translate=0,
            flip_prob=flip_prob,
        )  # fmt: skip
        ds = bottom_up_dataset_from_records(
            records, COCO_17, INPUT, OUTPUTS, batch_size=4, seed=0,
            shuffle=False, augment=config,
        )  # fmt: skip
        return _concat(_batches(ds))

    plain_x, plain = run(0.0)
    flip_x, flipped = run(1.0)
    np.testing.assert_allclose(flip_x, plain_x[:, :, ::-1], atol=2e-3)
    res = OUTPUTS[0]
    swap = list(COCO_17.flip_indices)
    assert swap[5] == 6  # left shoulder <-> right shoulder
    a, b = flipped["joints"], plain["joints"][:, :, swap]
    np.testing.assert_array_equal(a[..., 1], b[..., 1])
    labelled = a[..., 1] == 1
    assert labelled.sum() > 50
    ya, xa = np.divmod(a[..., 0], res)
    yb, xb = np.divmod(b[..., 0], res)
    np.testing.assert_array_equal(ya[labelled], yb[labelled])
    # Mirrored x is res - 1 - x before truncation.
    assert set(np.unique((xa + xb)[labelled])) <= {res - 2, res - 1}
    for r in range(len(OUTPUTS)):
        mismatch = flipped[f"masks_{r}"] != plain[f"masks_{r}"][:, :, ::-1]
        assert mismatch.mean() < 0.01


def _rectangle_rle(height, width, box):
    """Uncompressed RLE (COCO crowd format) of a filled box."""
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 1
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])))
    counts = np.diff(np.concatenate([[0], changes]))
    return {"size": [height, width], "counts": [int(c) for c in counts]}


def test_crowd_and_people_without_keypoints_are_masked(coco, tmp_path):
    ann, folder, _ = coco
    data = json.loads(ann.read_text())
    image = next(im for im in data["images"] if im["id"] == 785)
    crowd = (150, 200, 350, 400)  # x0, y0, x1, y1 in image pixels
    data["annotations"].append(
        {
            "id": 999001,
            "image_id": 785,
            "category_id": 1,
            "iscrowd": 1,
            "bbox": [150, 200, 200, 200],
            "area": 40000.0,
            "num_keypoints": 0,
            "keypoints": [0] * 51,
            "segmentation": _rectangle_rle(
                image["height"], image["width"], crowd
            ),
        }
    )
    crowded = tmp_path / "crowd.json"
    crowded.write_text(json.dumps(data))
    records, report = load_coco_images(crowded, folder)
    assert report.crowd == 1
    ds = bottom_up_dataset_from_records(
        records, COCO_17, INPUT, OUTPUTS, batch_size=4, training=False
    )
    _, targets = _concat(_batches(ds))
    regions = [json.loads(r) for r in records["ignore_regions"]]
    assert sum(len(r) for r in regions) == 3  # the crowd, 2 without keypoints
    res = OUTPUTS[1]
    for i, size in enumerate(records["image_size"]):
        # The official get_mask, warped with OpenCV.
        h, w = (int(s) for s in size)
        covered = np.zeros((h, w))
        for segmentation in regions[i]:
            rles = mask_utils.frPyObjects(segmentation, h, w)
            decoded = mask_utils.decode(rles)
            covered += decoded.reshape(h, w, -1).sum(-1)
        want = cv2.warpAffine(
            ((covered < 0.5) * 255).astype(np.uint8),
            _eval_matrix(size, res),
            (res, res),
        )
        want = (want / 255 > 0.5).astype(np.float32)
        got = targets["masks_1"][i]
        assert (got != want).mean() < 0.01
        if records["image_id"][i] == 785:
            m = _eval_matrix(size, res)
            (x0, y0), (x1, y1) = (
                m[:, :2] @ np.array(c) + m[:, 2] for c in (crowd[:2], crowd[2:])
            )
            inner = got[int(y0) + 2 : int(y1) - 1, int(x0) + 2 : int(x1) - 1]
            assert inner.size > 50 and inner.max() == 0.0
            assert got.mean() > 0.5
        if not regions[i]:
            assert got.min() == 1.0  # 'short' covers only image pixels


def test_padding_outside_the_image_is_masked(coco):
    _, _, records = coco
    config = BottomUpAugmentConfig(scale_type="long")
    ds = bottom_up_dataset_from_records(
        records, COCO_17, INPUT, (32,), batch_size=4, training=False,
        augment=config,
    )  # fmt: skip
    images, targets = _concat(_batches(ds))
    h, w = records["image_size"][0]  # 425 x 640: landscape
    rows = int((1 - h / w) / 2 * 32)
    assert targets["masks_0"][0, :rows].max() == 0.0
    assert targets["masks_0"][0, -rows:].max() == 0.0
    assert targets["masks_0"][0, 16, 5:27].min() == 1.0
    assert "heatmaps_1" not in targets


def test_fixed_shapes_determinism_and_loss(coco):
    _, _, records = coco

    def build(seed):
        return bottom_up_dataset_from_records(
            records, COCO_17, INPUT, OUTPUTS, batch_size=3, seed=seed
        )

    ds = build(7)
    images, targets = ds.element_spec
    assert images.shape.as_list() == [3, INPUT, INPUT, 3]
    shapes = {k: v.shape.as_list() for k, v in targets.items()}
    assert shapes == {
        "heatmaps_0": [3, 32, 32, 17],
        "masks_0": [3, 32, 32],
        "joints": [3, 30, 17, 2],
        "heatmaps_1": [3, 64, 64, 17],
        "masks_1": [3, 64, 64],
    }
    first = _batches(ds)
    assert len(first) == 1  # 4 images, the partial batch dropped
    again = _batches(build(7))
    other = _batches(build(8))
    np.testing.assert_array_equal(first[0][0], again[0][0])
    for key in shapes:
        np.testing.assert_array_equal(first[0][1][key], again[0][1][key])
    assert not np.array_equal(first[0][0], other[0][0])
    # The targets feed the loss; zero predictions give a finite value.
    loss = BottomUpLoss(17, [0, 1], [True, False])
    outputs = [
        np.zeros((3, 32, 32, 34), "float32"),
        np.zeros((3, 64, 64, 17), "float32"),
    ]
    parts = {
        k: float(to_numpy(v))
        for k, v in loss.components(first[0][1], outputs).items()
    }
    assert parts["heatmap"] > 0 and np.isfinite(parts["heatmap"])
    # Equal tags (0): 0.5 per image with two or more people.
    assert 0 < parts["push"] <= 0.5e-3
    assert parts["pull"] == 0.0


def test_bad_arguments_are_explained(coco):
    ann, folder, records = coco
    with pytest.raises(ValueError, match="output_sizes"):
        bottom_up_dataset_from_records(records, COCO_17, 128, ())
    with pytest.raises(ValueError, match="input_size"):
        bottom_up_dataset_from_records(records, COCO_17, 0)
    with pytest.raises(ValueError, match="batch_size"):
        bottom_up_dataset_from_records(records, COCO_17, batch_size=0)
    with pytest.raises(ValueError, match="mean and std"):
        bottom_up_dataset_from_records(records, COCO_17, std=(1, 1))
    with pytest.raises(ValueError, match="wants"):
        bottom_up_dataset_from_records(
            {**records, "keypoints": records["keypoints"][:, :, :5]}, COCO_17
        )
    with pytest.raises(ValueError, match="BottomUpAugmentConfig"):
        bottom_up_dataset_from_records(records, COCO_17, augment={})
    with pytest.raises(ValueError, match="scale_type"):
        BottomUpAugmentConfig(scale_type="middle")
    with pytest.raises(ValueError, match="check_images"):
        make_bottom_up_dataset(ann, folder, check_images="exists")


def test_ignore_runs_decode_to_the_official_mask():
    h, w = 7, 9
    box = np.zeros((h, w), np.uint8, order="F")
    box[4:6, 5:8] = 1
    regions = [
        [[0, 0, 3, 0, 3, 2, 0, 2]],  # a polygon over pixel (0, 0)
        {k: v.decode() if isinstance(v, bytes) else v
         for k, v in mask_utils.encode(box).items()},  # compressed RLE
    ]  # fmt: skip
    runs = ignore_regions_to_runs(json.dumps(regions), h, w)
    assert runs[0] == 0 and runs.sum() == h * w
    got = to_numpy(decode_ignore_mask(runs, h, w))
    covered = mask_utils.decode(mask_utils.frPyObjects(regions[0], h, w))
    want = (covered.sum(-1) + box) < 0.5
    np.testing.assert_array_equal(got, want.astype(np.uint8))
    empty = to_numpy(
        decode_ignore_mask(ignore_regions_to_runs("[]", h, w), h, w)
    )
    assert empty.shape == (h, w) and empty.min() == 1
