import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from kerapose.codecs.msra_heatmap import MSRAHeatmap
from kerapose.data.coco import load_coco_instances
from kerapose.data.keypoint_specs import COCO_17
from kerapose.data.pipelines import _source_window
from kerapose.data.pipelines import build_top_down_dataset
from kerapose.data.pipelines import make_top_down_dataset
from kerapose.data.transforms import IMAGENET_MEAN
from kerapose.data.transforms import IMAGENET_STD
from kerapose.data.transforms import AugmentConfig
from kerapose.data.transforms import affine_warp_image
from kerapose.data.transforms import get_affine_matrix
from kerapose.testing.fake_data import write_fake_coco
from tests.data.test_transforms import _official_affine

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CODEC = MSRAHeatmap((64, 64), (16, 16), sigma=2.0)
tf_only = pytest.mark.tf_only


def _pixels(images):
    """Normalised crops back to 0-255 RGB."""
    return (
        np.asarray(images) * np.array(IMAGENET_STD) * 255
        + np.array(IMAGENET_MEAN) * 255
    )


@pytest.fixture
def fake(tmp_path):
    ann = write_fake_coco(tmp_path, num_images=6, image_size=(48, 64))
    return ann, tmp_path / "images"


def _batches(ds, epochs=1):
    return [
        [np.asarray(t) for t in batch] for _ in range(epochs) for batch in ds
    ]


@tf_only
def test_training_batches(fake):
    ann, image_dir = fake
    ds, report = build_top_down_dataset(
        ann, image_dir, CODEC, batch_size=4, seed=0, return_report=True
    )
    images, heatmaps, weights = ds.element_spec
    assert images.shape.as_list() == [4, 64, 64, 3]
    assert heatmaps.shape.as_list() == [4, 16, 16, 17]
    assert weights.shape.as_list() == [4, 17]
    batches = _batches(ds)
    assert len(batches) == report.kept // 4  # drop_remainder in training
    for images, heatmaps, weights in batches:
        assert images.dtype == heatmaps.dtype == weights.dtype == np.float32
        assert np.isfinite(images).all()
        assert set(np.unique(weights)) <= {0.0, 1.0}
        assert heatmaps.max() <= 1.0 and heatmaps.min() >= 0.0
        # Weighted-out keypoints have empty maps, the others a Gaussian
        # (whose peak may lie just outside the map).
        peaks = heatmaps.max(axis=(1, 2))
        assert (peaks[weights == 0] == 0).all()
        assert (peaks[weights == 1] > 0).all()


@tf_only
def test_eval_meta(fake):
    ann, image_dir = fake
    instances, _ = load_coco_instances(
        ann, image_dir, mode="eval", input_size=CODEC.input_size
    )
    ds = build_top_down_dataset(
        ann, image_dir, CODEC, batch_size=4, training=False, include_meta=True
    )
    images, meta = zip(*_batches_meta(ds))
    assert sum(len(x) for x in images) == len(instances["center"])
    for key in ("center", "scale", "image_id", "score", "area"):
        got = np.concatenate([m[key] for m in meta])
        np.testing.assert_array_equal(got, instances[key])
    with pytest.raises(ValueError, match="include_meta"):
        build_top_down_dataset(ann, image_dir, CODEC, include_meta=True)


def _batches_meta(ds):
    return [
        (np.asarray(x), {k: np.asarray(v) for k, v in m.items()}) for x, m in ds
    ]


@tf_only
def test_seeded_pipelines_repeat_exactly(fake):
    ann, image_dir = fake

    def build(seed):
        return build_top_down_dataset(
            ann, image_dir, CODEC, batch_size=3, seed=seed, verbose=False
        )

    first = _batches(build(7), epochs=2)
    second = _batches(build(7), epochs=2)
    for a, b in zip(first, second, strict=True):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    half = len(first) // 2
    # A new epoch draws new augmentations; another seed differs too.
    assert not np.array_equal(first[0][0], first[half][0])
    other = _batches(build(8))
    assert not np.array_equal(first[0][0], other[0][0])


@tf_only
def test_corrupt_files_are_skipped_and_counted(fake):
    ann, image_dir = fake
    data = json.loads(ann.read_text())
    files = {img["id"]: img["file_name"] for img in data["images"]}
    counts = {}
    for a in data["annotations"]:
        counts[a["image_id"]] = counts.get(a["image_id"], 0) + 1
    jpeg = (image_dir / files[1]).read_bytes()
    (image_dir / files[1]).write_bytes(jpeg[: len(jpeg) // 3])  # truncated
    (image_dir / files[2]).write_text("hello, I am not a JPEG\n")
    # Truncated but with an end marker: passes the cheap header check, and
    # decodes as far as its data goes.
    jpeg = (image_dir / files[3]).read_bytes()
    (image_dir / files[3]).write_bytes(jpeg[: len(jpeg) // 2] + b"\xff\xd9")
    bad = counts[1] + counts[2]
    total = len(data["annotations"])

    ds, report = build_top_down_dataset(
        ann, image_dir, CODEC, batch_size=1, seed=0, return_report=True
    )
    assert report.corrupt_image == bad and report.kept == total - bad
    assert len(ds) == report.kept
    batches = _batches(ds)  # the epoch runs to the end
    assert len(batches) == report.kept
    assert all(np.isfinite(b[0]).all() for b in batches)
    with pytest.raises(ValueError, match="exists"):
        build_top_down_dataset(ann, image_dir, CODEC, check_images="exists")


@tf_only
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("drop_remainder", [True, False])
def test_cardinality_is_known(fake, training, drop_remainder):
    ann, image_dir = fake
    ds, report = build_top_down_dataset(
        ann,
        image_dir,
        CODEC,
        batch_size=4,
        training=training,
        seed=0,
        drop_remainder=drop_remainder,
        verbose=False,
        return_report=True,
    )
    rounding = math.floor if drop_remainder else math.ceil
    want = rounding(report.kept / 4)
    assert report.kept % 4  # a partial last batch exists
    assert int(ds.cardinality()) == len(ds) == want
    assert len(_batches(ds)) == want


@tf_only
def test_people_without_keypoints_get_zero_targets(fake):
    ann, image_dir = fake
    data = json.loads(ann.read_text())
    data["annotations"][0]["keypoints"] = [0] * 51
    ann.write_text(json.dumps(data))
    ds = build_top_down_dataset(
        ann, image_dir, CODEC, batch_size=2, training=False, verbose=False
    )
    images, heatmaps, weights = _batches(ds)[0]
    assert weights[0].sum() == 0 and heatmaps[0].max() == 0
    assert weights[1].sum() > 0


def _write_dot_dataset(root):
    """One image: a white dot labelled as the left wrist."""
    image = np.zeros((96, 128, 3), np.uint8)
    cv2.circle(image, (40, 50), 3, (255, 255, 255), -1)
    (root / "images").mkdir()
    cv2.imwrite(str(root / "images" / "dot.jpg"), image)
    image = cv2.imread(str(root / "images" / "dot.jpg"))[..., ::-1]
    kpts = [0] * 51
    kpts[27:30] = [40, 50, 2]  # index 9: left_wrist
    data = {
        "images": [
            {"id": 1, "file_name": "dot.jpg", "width": 128, "height": 96}
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [20, 20, 60, 60],
                "area": 3600,
                "iscrowd": 0,
                "keypoints": kpts,
            }
        ],
        "categories": [
            {
                "id": 1,
                "name": "person",
                "keypoints": list(COCO_17.keypoint_names),
            }
        ],
    }
    ann = root / "dot.json"
    ann.write_text(json.dumps(data))
    return ann, image, root / "images"


@tf_only
def test_flip_moves_pixels_and_labels_together(tmp_path):
    ann, image, image_dir = _write_dot_dataset(tmp_path)
    cfg = AugmentConfig(
        scale_factor=0.0, rotation_prob=0.0, flip_prob=1.0, half_body_prob=0.0
    )
    ds = build_top_down_dataset(
        ann, image_dir, CODEC, batch_size=1, seed=0, augment_config=cfg
    )
    crops, heatmaps, weights = _batches(ds)[0]
    assert weights[0, 10] == 1 and weights[0, 9] == 0  # now a right wrist
    keypoints, _ = CODEC.decode(heatmaps)
    x, y = np.asarray(keypoints)[0, 10]
    # The official loader trims the 60 px box to 59 px (x2 = x + w - 1);
    # then the official mirror of its centre, and the crop around that.
    center = np.array([128 - 49.5 - 1, 49.5])
    scale = np.array([59, 59]) / 200 * 1.25
    m = _official_affine(center, scale, 0.0, (64, 64))
    want = m @ [128 - 40 - 1, 50, 1]
    assert abs(x - want[0]) <= 2 and abs(y - want[1]) <= 2  # stride 4
    pixels = _pixels(crops[0])
    assert pixels[round(want[1]), round(want[0])].min() > 200
    mirrored = np.ascontiguousarray(image[:, ::-1])
    expected = cv2.warpAffine(mirrored, m, (64, 64), flags=cv2.INTER_LINEAR)
    np.testing.assert_allclose(pixels, expected, atol=1.5)


@tf_only
def test_source_window_crop_equals_full_image_warp():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (90, 120, 3)).astype(np.uint8)
    size = (32, 24)
    for i in range(20):
        center = rng.uniform(-40, 160, 2)
        matrix = get_affine_matrix(
            center,
            rng.uniform(0.05, 0.8, 2),
            rng.uniform(-90, 90) * (i % 2),
            size,
        )
        y, x, h, w = _source_window(matrix, size, 90, 120).numpy()
        assert h >= 1 and w >= 1 and y + h <= 90 and x + w <= 120
        shifted = matrix.numpy().copy()
        shifted[:, 2] += shifted[:, :2] @ [x, y]
        part = affine_warp_image(image[y : y + h, x : x + w], shifted, size)
        full = affine_warp_image(image, matrix, size)
        np.testing.assert_allclose(part, full, atol=0.02)


@pytest.fixture
def coco_sample():
    root = SHARED_DATA / "coco_sample"
    if not root.exists():
        pytest.skip(f"{root} is absent (shared test data not checked out)")
    return root / "test_coco.json", root


@tf_only
def test_real_coco_crops_land_on_people(coco_sample):
    ann, image_dir = coco_sample
    codec = MSRAHeatmap((256, 192), (64, 48), sigma=2.0)
    instances, report = load_coco_instances(ann, image_dir, mode="eval")
    ds = make_top_down_dataset(
        instances, codec, report.spec, batch_size=16, training=False
    )
    crops, heatmaps, weights = _batches(ds)[0]
    assert len(crops) == report.kept == 14
    decoded = np.asarray(codec.decode(heatmaps)[0])
    stride = codec.stride[1]
    checked = 0
    for i in range(len(crops)):
        image = cv2.imread(instances["image_path"][i])[..., ::-1]
        m = _official_affine(
            instances["center"][i], instances["scale"][i], 0.0, (192, 256)
        )
        # The crop is the official warp of the person box.
        want = cv2.warpAffine(image, m, (192, 256), flags=cv2.INTER_LINEAR)
        pixels = _pixels(crops[i])
        assert np.abs(pixels - want).mean() < 0.6
        kpts = instances["keypoints"][i] @ m[:, :2].T + m[:, 2]
        for k in np.flatnonzero(instances["visibility"][i] > 0):
            x, y = kpts[k]
            if not (0 <= x < 192 and 0 <= y < 256):
                continue
            assert weights[i, k] == 1
            # Target peaks decode back onto the annotated keypoint.
            np.testing.assert_array_less(
                np.abs(decoded[i, k] - kpts[k]), 0.5 * stride + 1e-3
            )
            # And there is picture there, not the zero padding.
            r, c = int(y), int(x)
            patch = pixels[max(r - 4, 0) : r + 5, max(c - 4, 0) : c + 5]
            assert patch.std() > 1.0 or patch.mean() > 5.0
            checked += 1
    assert checked > 150


def test_dataset_feeds_model_fit(fake):
    import keras

    from kerapose.models.hrnet.hrnet_backbone import HRNetBackbone
    from kerapose.models.top_down_estimator import TopDownPoseEstimator

    ann, image_dir = fake
    ds = build_top_down_dataset(
        ann, image_dir, CODEC, batch_size=2, seed=0, verbose=False
    )
    keras.utils.set_random_seed(0)
    backbone = HRNetBackbone(
        stage_channels=(8, 16, 32, 64),
        stage_modules=(1, 1, 1),
        stage_blocks=1,
        image_shape=(64, 64, 3),
    )
    model = TopDownPoseEstimator(backbone, num_keypoints=17)
    # The family's loss; SGD because tracing Adam's update of every
    # variable costs a minute on 2 cores and proves nothing of ours.
    model.compile(optimizer="sgd")
    history = model.fit(ds.take(2), epochs=1, verbose=0)
    assert math.isfinite(history.history["loss"][-1])


@tf_only
def test_png_images_crop_like_jpegs(fake):
    ann, image_dir = fake
    before = _batches(
        build_top_down_dataset(ann, image_dir, CODEC, training=False)
    )
    data = json.loads(ann.read_text())
    for img in data["images"]:
        path = image_dir / img["file_name"]
        # OpenCV decodes like the pipeline (INTEGER_ACCURATE): same pixels.
        cv2.imwrite(str(path.with_suffix(".png")), cv2.imread(str(path)))
        path.unlink()
        img["file_name"] = path.with_suffix(".png").name
    ann.write_text(json.dumps(data))
    after = _batches(
        build_top_down_dataset(ann, image_dir, CODEC, training=False)
    )
    for a, b in zip(before, after, strict=True):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, atol=1e-5)
