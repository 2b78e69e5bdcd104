"""The single-stage (YOLO-Pose) tf.data pipeline on the real COCO sample.

The reference here is written from the official recipe with OpenCV and
NumPy (resize, paste on a 114 canvas, ``T @ S @ R @ C``, warpAffine,
box_candidates) and compared with what the TensorFlow pipeline yields.
"""

import math
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from kerapose.data.coco_images import load_coco_images
from kerapose.data.keypoint_specs import COCO_17
from kerapose.data.single_stage import make_single_stage_dataset
from kerapose.data.single_stage import single_stage_dataset_from_records
from kerapose.data.single_stage_augment import SingleStageAugmentConfig
from kerapose.data.single_stage_augment import augment_hsv
from kerapose.data.single_stage_sampler import SingleStageSampler
from kerapose.data.single_stage_sampler import _targets
from tests.conftest import shared_path

# tf.data / NumPy only: the Keras backend changes nothing here, so one
# backend's pass covers it.
pytestmark = [
    pytest.mark.tf_only,
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="tf.data pipeline: runs in the TensorFlow pass only",
    ),
]

SIZE = (128, 128)
SCRIPT = (
    Path(__file__).resolve().parents[2] / "examples" / "single_stage_augment.py"
)
FILL_VALUE = 114  # the official grey (letterbox, mosaic, warp border)
NO_COLOUR = {"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0, "fliplr": 0.0}


@pytest.fixture(scope="module")
def coco():
    folder = shared_path("data", "coco_sample")
    ann = folder / "test_coco.json"
    # 20 rows: a mosaic of these images keeps every person.
    records, _ = load_coco_images(ann, folder, max_people=20)
    images = [
        cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        for p in records["image_path"]
    ]
    return ann, folder, records, images


# -- the reference, from the official recipe --------------------------------


def _ref_tile(image, interpolation=cv2.INTER_LINEAR):
    h0, w0 = image.shape[:2]
    r = min(SIZE[0] / h0, SIZE[1] / w0)
    w, h = max(int(w0 * r), 1), max(int(h0 * r), 1)
    tile = cv2.resize(image, (w, h), interpolation=interpolation)
    return tile, np.array([w / w0, h / h0])


def _ref_people(records, j, scale, offset):
    """Image j's people after a resize and a shift (pixel centres)."""
    valid = records["valid"][j]
    x, y, w, h = records["boxes"][j][valid].T.astype(np.float64)
    corners = np.stack([x, y, x + w, y + h], -1).reshape(-1, 2, 2)
    boxes = ((corners + 0.5) * scale - 0.5 + offset).reshape(-1, 4)
    kpts = records["keypoints"][j][valid].astype(np.float64)
    labelled = kpts[..., 2:] > 0
    kpts[..., :2] = np.where(
        labelled, (kpts[..., :2] + 0.5) * scale - 0.5 + offset, 0.0
    )
    return boxes, kpts


def _ref_mosaic(records, images, indices, xc, yc):
    """The official load_mosaic: canvas, boxes clipped to it, keypoints."""
    hh, ww = 2 * SIZE[0], 2 * SIZE[1]
    canvas = np.full((hh, ww, 3), FILL_VALUE, np.uint8)
    all_boxes, all_kpts = [], []
    for i, j in enumerate(indices):
        tile, scale = _ref_tile(images[j])
        h, w = tile.shape[:2]
        if i == 0:
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b = w - (x2a - x1a), h - (y2a - y1a)
        elif i == 1:
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, ww), yc
            x1b, y1b = 0, h - (y2a - y1a)
        elif i == 2:
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(hh, yc + h)
            x1b, y1b = w - (x2a - x1a), 0
        else:
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, ww), min(hh, yc + h)
            x1b, y1b = 0, 0
        canvas[y1a:y2a, x1a:x2a] = tile[
            y1b : y1b + y2a - y1a, x1b : x1b + x2a - x1a
        ]
        boxes, kpts = _ref_people(
            records, j, scale, np.array([x1a - x1b, y1a - y1b])
        )
        all_boxes.append(boxes)
        all_kpts.append(kpts)
    boxes = np.clip(np.concatenate(all_boxes), 0, [ww, hh, ww, hh])
    kpts = np.concatenate(all_kpts)
    outside = ((kpts[..., :2] < 0) | (kpts[..., :2] > [ww, hh])).any(-1)
    kpts[outside] = 0.0
    return canvas, boxes, kpts


def _ref_matrix(canvas_hw, angle, scale, shear, translate):
    """``T @ S @ R @ C`` of the official random_perspective."""
    c = np.eye(3)
    c[0, 2], c[1, 2] = -canvas_hw[1] / 2, -canvas_hw[0] / 2
    r = np.eye(3)
    r[:2] = cv2.getRotationMatrix2D(angle=angle, center=(0, 0), scale=scale)
    s = np.eye(3)
    s[0, 1] = math.tan(shear[0] * math.pi / 180)
    s[1, 0] = math.tan(shear[1] * math.pi / 180)
    t = np.eye(3)
    t[0, 2], t[1, 2] = translate[0] * SIZE[1], translate[1] * SIZE[0]
    return (t @ s @ r @ c)[:2]


def _ref_affine(canvas, boxes, kpts, params):
    """The official random_perspective with its box_candidates filter."""
    m = _ref_matrix(
        canvas.shape[:2],
        params["angle"],
        params["scale"],
        params["shear"],
        params["translate"],
    )
    image = cv2.warpAffine(
        canvas,
        m,
        (SIZE[1], SIZE[0]),
        flags=cv2.INTER_LINEAR,
        borderValue=(FILL_VALUE,) * 3,
    )
    n = len(boxes)
    xy = boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n * 4, 2)
    xy = (xy @ m[:, :2].T + m[:, 2]).reshape(n, 8)
    new = np.stack(
        [xy[:, 0::2].min(1), xy[:, 1::2].min(1)]
        + [xy[:, 0::2].max(1), xy[:, 1::2].max(1)],
        -1,
    )
    new = np.clip(new, 0, [SIZE[1], SIZE[0], SIZE[1], SIZE[0]])
    moved = kpts.copy()
    moved[..., :2] = kpts[..., :2] @ m[:, :2].T + m[:, 2]
    outside = ((moved[..., :2] < 0) | (moved[..., :2] > SIZE[::-1])).any(-1)
    moved[outside | (kpts[..., 2] == 0)] = 0.0
    # box_candidates(wh_thr=2, ar_thr=20, area_thr=0.1)
    w1, h1 = (boxes[:, 2:] - boxes[:, :2]).T * params["scale"]
    w2, h2 = (new[:, 2:] - new[:, :2]).T
    ar = np.maximum(w2 / (h2 + 1e-16), h2 / (w2 + 1e-16))
    keep = (w2 > 2) & (h2 > 2) & (w2 * h2 / (w1 * h1 + 1e-16) > 0.1)
    keep &= ar < 20
    pushed_out = int((outside & (kpts[..., 2] > 0))[keep].sum())
    return image, new[keep], moved[keep], pushed_out, keep


def _params(**overrides):
    params = {
        "mosaic": True,
        "indices": [2, 3, 1],
        "center": [150.0, 110.0],
        "angle": 12.0,
        "scale": 1.3,
        "shear": [3.0, -2.0],
        "translate": [0.55, 0.45],
        "hsv_gains": [1.0, 1.0, 1.0],
        "flip": False,
    }
    params.update(overrides)
    return params


def _render(records, index, params, **config):
    sampler = SingleStageSampler(
        records, COCO_17, SIZE, SingleStageAugmentConfig(**config)
    )
    tensors = {k: tf.constant(v) for k, v in params.items()}
    tensors["indices"] = tf.constant(params["indices"], tf.int32)
    image, targets = sampler.render(tf.constant(index, tf.int64), tensors)
    out = {k: v.numpy() for k, v in targets.items()}
    return image.numpy() * 255.0, out


def _real(targets):
    valid = targets["valid"] > 0
    return targets["boxes"][valid], targets["keypoints"][valid]


def _blurred_at(image, points, sigma):
    """Mean colour around points: a Gaussian blur sampled bilinearly."""
    blurred = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma)
    maps = np.asarray(points, np.float32).reshape(1, -1, 2)
    out = cv2.remap(blurred, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR)
    return out.reshape(-1, 3)


def _pixel_diffs(out_image, out_kpts, src_image, src_kpts, zoom):
    """Colour differences around moved joints and their originals."""
    labelled = out_kpts[..., 2] > 0
    sigma = 2.0
    got = _blurred_at(out_image, out_kpts[labelled][:, :2], sigma)
    want = _blurred_at(src_image, src_kpts[labelled][:, :2], sigma / zoom)
    return np.abs(got - want)


def _assert_pixels_follow(diffs):
    """The pixels around each moved joint are those around the original."""
    diffs = np.concatenate(diffs)
    assert len(diffs) >= 10
    # Measured median 3.2 levels (mosaic), 0 (flip); joints 2 pixels off
    # give 16, a flip without the joint swap 19.
    assert np.median(diffs) < 8.0


# -- geometry against the reference ------------------------------------------


def test_mosaic_matches_the_official_recipe(coco):
    _, _, records, images = coco
    params = _params()
    image, targets = _render(records, 0, params, **NO_COLOUR)
    canvas, boxes, kpts = _ref_mosaic(records, images, [0, 2, 3, 1], 150, 110)
    ref_image, ref_boxes, ref_kpts, _, keep = _ref_affine(
        canvas, boxes, kpts, params
    )

    got_boxes, got_kpts = _real(targets)
    assert len(ref_boxes) >= 5  # people from several images
    np.testing.assert_allclose(got_boxes, ref_boxes, atol=2e-3)
    np.testing.assert_allclose(got_kpts, ref_kpts, atol=2e-3)
    # TF's float bilinear against OpenCV's fixed-point one: measured mean
    # 0.29 levels, max 1.5.
    diff = np.abs(image - ref_image.astype(np.float32))
    assert diff.mean() < 0.6 and diff.max() < 4.0

    # Every kept joint still sits on the same pixels of its photo.
    sources = [
        (j, row)
        for j in (0, 2, 3, 1)
        for row in range(int(records["valid"][j].sum()))
    ]
    kept = [sources[i] for i in np.flatnonzero(keep)]
    assert len({j for j, _ in kept}) >= 3  # from three photos at least
    diffs = []
    for j in {j for j, _ in kept}:
        rows = [i for i, (jj, _) in enumerate(kept) if jj == j]
        src = records["keypoints"][j][[r for jj, r in kept if jj == j]]
        zoom = params["scale"] * _ref_tile(images[j])[1][0]
        diffs.append(_pixel_diffs(image, got_kpts[rows], images[j], src, zoom))
    _assert_pixels_follow(diffs)


def test_letterbox_affine_drops_people_and_joints_that_leave(coco):
    _, _, records, images = coco
    # Zoomed in and pushed right: part of the picture leaves the input.
    params = _params(mosaic=False, angle=-8.0, scale=1.45, translate=[0.9, 0.6])
    image, targets = _render(records, 2, params, mosaic=False, **NO_COLOUR)
    tile, scale = _ref_tile(images[2])
    h, w = tile.shape[:2]
    top, left = (SIZE[0] - h) // 2, (SIZE[1] - w) // 2
    canvas = cv2.copyMakeBorder(
        tile, top, SIZE[0] - h - top, left, SIZE[1] - w - left,
        cv2.BORDER_CONSTANT, value=(FILL_VALUE,) * 3,
    )  # fmt: skip
    boxes, kpts = _ref_people(records, 2, scale, np.array([left, top]))
    ref_image, ref_boxes, ref_kpts, pushed_out, _ = _ref_affine(
        canvas, boxes, kpts, params
    )
    assert 0 < len(ref_boxes) < len(boxes)  # some people were dropped
    assert pushed_out > 0  # some joints of kept people left the image

    got_boxes, got_kpts = _real(targets)
    np.testing.assert_allclose(got_boxes, ref_boxes, atol=2e-3)
    np.testing.assert_allclose(got_kpts, ref_kpts, atol=2e-3)
    unlabelled = got_kpts[..., 2] == 0
    assert (got_kpts[unlabelled] == 0).all()
    labelled = got_kpts[~unlabelled][:, :2]
    assert (labelled >= 0).all() and (labelled <= SIZE[::-1]).all()
    diff = np.abs(image - ref_image.astype(np.float32))
    assert diff.mean() < 0.6  # measured 0.23


def test_flip_mirrors_pixels_and_swaps_joints(coco):
    _, _, records, _ = coco
    params = _params(scale=1.0, angle=0.0, shear=[0.0, 0.0])
    config = dict(NO_COLOUR, fliplr=0.5)
    plain, a = _render(records, 1, params, **config)
    flipped, b = _render(records, 1, dict(params, flip=True), **config)
    np.testing.assert_array_equal(flipped, plain[:, ::-1])
    np.testing.assert_array_equal(a["valid"], b["valid"])
    (boxes_a, kpts_a), (boxes_b, kpts_b) = _real(a), _real(b)
    width = SIZE[1]
    # x -> W - 1 - x, clipped to [0, W] again.
    mirrored = boxes_a[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [width - 1, 0] * 2
    np.testing.assert_allclose(boxes_b, np.clip(mirrored, 0, width), atol=1e-3)
    # The left shoulder of the mirrored picture is the right one mirrored.
    swapped = kpts_a[:, COCO_17.flip_indices]
    assert COCO_17.flip_indices[5] == 6
    # Joints within a pixel of the right edge mirror to x < 0: unlabelled.
    gone = swapped[..., 0] > width - 1
    np.testing.assert_array_equal(
        kpts_b[..., 2], np.where(gone, 0.0, swapped[..., 2])
    )
    swapped[gone] = 0.0
    labelled = swapped[..., 2] > 0
    np.testing.assert_allclose(
        kpts_b[labelled][:, 0], width - 1 - swapped[labelled][:, 0], atol=1e-3
    )
    np.testing.assert_allclose(
        kpts_b[labelled][:, 1], swapped[labelled][:, 1], atol=1e-3
    )
    _assert_pixels_follow([_pixel_diffs(flipped, kpts_b, plain, swapped, 1.0)])


def test_hsv_matches_the_official_lookup_tables(coco):
    image = cv2.resize(coco[3][3], (160, 100), interpolation=cv2.INTER_AREA)
    gains = np.array([1.012, 0.45, 1.3])
    # The official augment_hsv: OpenCV HSV (hue 0-179) and uint8 tables.
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.int16)
    luts = [
        ((x * gains[0]) % 180).astype(np.uint8),
        np.clip(x * gains[1], 0, 255).astype(np.uint8),
        np.clip(x * gains[2], 0, 255).astype(np.uint8),
    ]
    hsv = cv2.merge([cv2.LUT(c, t) for c, t in zip((hue, sat, val), luts)])
    want = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    got = augment_hsv(tf.constant(image, tf.float32), gains).numpy()
    # The tables round hue to 2 degrees and every channel to uint8:
    # measured mean 0.4 levels.
    assert np.abs(got - want).mean() < 1.0
    same = augment_hsv(tf.constant(image, tf.float32), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(same.numpy(), image, atol=1e-3)


# -- the dataset --------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluation(coco):
    """The evaluation batch of all four images: (images, targets)."""
    ann, folder, _, _ = coco
    ds, _ = make_single_stage_dataset(
        ann, folder, SIZE, batch_size=4, max_people=20, training=False
    )
    return next(iter(ds))


def test_letterbox_evaluation_maps_back_exactly(coco, evaluation):
    ann, folder, records, images = coco
    batch, targets = evaluation
    ds_meta, _ = make_single_stage_dataset(
        ann, folder, SIZE, batch_size=4, max_people=20, training=False,
        include_meta=True,
    )  # fmt: skip
    batch_meta, meta = next(iter(ds_meta))
    np.testing.assert_array_equal(batch, batch_meta)
    np.testing.assert_array_equal(meta["image_id"], records["image_id"])
    np.testing.assert_array_equal(meta["image_size"], records["image_size"])
    np.testing.assert_array_equal(targets["valid"], records["valid"])
    for i, original in enumerate(images):
        to_image = meta["input_to_image"][i].numpy()
        valid = records["valid"][i]
        # Boxes: the original ones moved by the inverse, clipped.
        to_input = np.linalg.inv(np.vstack([to_image, [0, 0, 1]]))[:2]
        x, y, w, h = records["boxes"][i][valid].T
        corners = np.stack([x, y, x + w, y + h], -1).reshape(-1, 2)
        want = corners @ to_input[:, :2].T + to_input[:, 2]
        want = np.clip(want.reshape(-1, 4), 0, SIZE[1])
        np.testing.assert_allclose(
            targets["boxes"][i].numpy()[valid], want, atol=2e-3
        )
        kpts = targets["keypoints"][i].numpy()[valid]
        want = records["keypoints"][i][valid]
        np.testing.assert_array_equal(kpts[..., 2], want[..., 2])
        labelled = want[..., 2] > 0
        back = kpts[labelled][:, :2] @ to_image[:, :2].T + to_image[:, 2]
        np.testing.assert_allclose(back, want[labelled][:, :2], atol=2e-3)
        assert (kpts[~labelled] == 0).all()

        # The picture: OpenCV's area resize, centred on grey 114.
        tile, _ = _ref_tile(original, cv2.INTER_AREA)
        h, w = tile.shape[:2]
        top, left = (SIZE[0] - h) // 2, (SIZE[1] - w) // 2
        got = batch[i].numpy() * 255.0
        inner = got[top : top + h, left : left + w]
        # TF's area resize is OpenCV's INTER_AREA to one level (measured
        # mean 0.001).
        assert np.abs(inner - tile).max() <= 1.0 + 1e-3
        assert np.abs(inner - tile).mean() < 0.05
        border = np.ones(SIZE, bool)
        border[top : top + h, left : left + w] = False
        np.testing.assert_allclose(got[border], FILL_VALUE, atol=1e-4)


def test_training_batches_fixed_and_reproducible(coco):
    ann, folder, _, _ = coco
    kwargs = dict(input_size=SIZE, batch_size=2, max_people=6, seed=7)
    ds, report = make_single_stage_dataset(ann, folder, **kwargs)
    assert report.images_kept == 4 and len(ds) == 2
    images, targets = ds.element_spec
    assert images.shape.as_list() == [2, *SIZE, 3]
    assert targets["boxes"].shape.as_list() == [2, 6, 4]
    assert targets["keypoints"].shape.as_list() == [2, 6, 17, 3]
    assert targets["valid"].shape.as_list() == [2, 6]

    def batches(dataset, count):
        return [
            (x.numpy(), {k: v.numpy() for k, v in y.items()})
            for x, y in dataset.take(count)
        ]

    first, second = batches(ds, 2), batches(ds, 1)
    again = batches(make_single_stage_dataset(ann, folder, **kwargs)[0], 2)
    for (x, y), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x, x2)
        for key in y:
            np.testing.assert_array_equal(y[key], y2[key])
    assert not np.array_equal(first[0][0], second[0][0])  # a new epoch

    for x, y in first + second:
        assert x.dtype == np.float32 and x.shape == (2, *SIZE, 3)
        assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0
        valid = y["valid"] > 0
        assert set(np.unique(y["valid"])) <= {0.0, 1.0}
        assert (y["boxes"][~valid] == 0).all()
        assert (y["keypoints"][~valid] == 0).all()
        boxes = y["boxes"][valid]
        assert (boxes >= 0).all() and (boxes <= SIZE[1]).all()
        assert (boxes[:, 2:] - boxes[:, :2] > 2).all()
        kpts = y["keypoints"]
        assert set(np.unique(kpts[..., 2])) <= {0.0, 1.0, 2.0}
        assert (kpts[kpts[..., 2] == 0] == 0).all()
        assert (kpts[..., :2] >= 0).all() and (kpts[..., :2] <= SIZE[1]).all()


def test_mosaic_on_and_off(coco, evaluation):
    _, _, records, _ = coco
    off = SingleStageAugmentConfig(
        mosaic=False, translate=0.0, scale=0.0, **NO_COLOUR
    )
    common = dict(input_size=SIZE, batch_size=4, seed=1, shuffle=False)
    ds = single_stage_dataset_from_records(
        records, COCO_17, augment=off, **common
    )
    _, targets = next(iter(ds))
    _, want = evaluation
    # No mosaic, no affine: image i letterboxed alone, every person kept.
    for key in ("boxes", "keypoints", "valid"):
        np.testing.assert_allclose(targets[key], want[key], atol=1e-4)

    on = SingleStageAugmentConfig(translate=0.0, scale=0.0, **NO_COLOUR)
    ds = single_stage_dataset_from_records(
        records, COCO_17, augment=on, **common
    )
    _, targets = next(iter(ds))
    counts = targets["valid"].numpy().sum(axis=1)
    # Mosaics hold other images' people: more than any one image has.
    assert counts.max() > records["valid"].sum(axis=1).max()


def test_images_without_people_and_odd_sizes(tmp_path):
    rng = np.random.default_rng(0)
    files = {
        "tiny.png": rng.integers(0, 255, (1, 1, 3), np.uint8),
        "thin.jpg": rng.integers(0, 255, (3, 700, 3), np.uint8),
        "huge.jpg": np.full((3000, 4000, 3), 90, np.uint8),
    }
    for name, pixels in files.items():
        assert cv2.imwrite(str(tmp_path / name), pixels)
    n, p, k = len(files), 3, 17
    records = {
        "image_path": np.array([str(tmp_path / f) for f in files]),
        "image_id": np.arange(n, dtype=np.int64),
        "boxes": np.zeros((n, p, 4), np.float32),
        "keypoints": np.zeros((n, p, k, 3), np.float32),
        "valid": np.zeros((n, p), bool),
    }
    # Half mosaics, half letterboxes: both branches of the sample.
    augment = SingleStageAugmentConfig(mosaic_probability=0.5)
    for training in (True, False):
        ds = single_stage_dataset_from_records(
            records, COCO_17, input_size=SIZE, batch_size=n,
            training=training, seed=0, augment=augment if training else None,
        )  # fmt: skip
        images, targets = next(iter(ds))
        assert images.shape == (n, *SIZE, 3)
        assert np.isfinite(images.numpy()).all()
        for key, value in targets.items():
            assert np.isfinite(value.numpy()).all()
            assert (value.numpy() == 0).all(), key


def test_more_people_than_rows_keeps_the_largest():
    boxes = tf.constant(
        [[0, 0, 4, 4], [0, 0, 9, 9], [0, 0, 1, 1], [0, 0, 5, 5], [0, 0, 8, 8]],
        tf.float32,
    )
    keypoints = tf.reshape(tf.range(5 * 2 * 3, dtype=tf.float32), (5, 2, 3))
    valid = tf.constant([True, True, True, True, False])
    out = _targets(boxes, keypoints, valid, max_people=2)
    # Rows 1 and 3 are the two largest valid boxes, in their order.
    np.testing.assert_array_equal(out["boxes"], tf.gather(boxes, [1, 3]))
    np.testing.assert_array_equal(
        out["keypoints"], tf.gather(keypoints, [1, 3])
    )
    np.testing.assert_array_equal(out["valid"], [1.0, 1.0])
    out = _targets(boxes, keypoints, valid, max_people=5)
    np.testing.assert_array_equal(out["valid"], [1, 1, 1, 1, 0])
    assert (out["boxes"][4].numpy() == 0).all()


def test_bad_input_errors(coco, tmp_path):
    ann, folder, records, _ = coco
    with pytest.raises(ValueError, match="fliplr must be in"):
        SingleStageAugmentConfig(fliplr=1.5)
    with pytest.raises(ValueError, match=r"scale must be in \[0, 1\)"):
        SingleStageAugmentConfig(scale=1.0)
    with pytest.raises(ValueError, match="include_meta=True is for evaluation"):
        single_stage_dataset_from_records(records, COCO_17, include_meta=True)
    with pytest.raises(ValueError, match="augment is for training"):
        single_stage_dataset_from_records(
            records, COCO_17, training=False, augment=SingleStageAugmentConfig()
        )
    with pytest.raises(ValueError, match="input_size must be"):
        single_stage_dataset_from_records(records, COCO_17, input_size=640)
    short = dict(records, keypoints=records["keypoints"][:, :, :5])
    with pytest.raises(ValueError, match="spec 'coco_17' wants"):
        single_stage_dataset_from_records(short, COCO_17)
    with pytest.raises(ValueError, match="check_images='exists'"):
        make_single_stage_dataset(ann, folder, check_images="exists")


def test_example_script_writes_the_picture(tmp_path):
    shared_path("data", "coco_sample")
    out = tmp_path / "samples.png"
    subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "--input-size", "64"]
        + ["--rows", "2", "--cols", "3"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape == (2 * 64, 3 * 64, 3)
