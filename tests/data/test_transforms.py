import cv2
import numpy as np
import pytest
import tensorflow as tf

from kerapose.codecs.msra_heatmap import MSRAHeatmap
from kerapose.data.heatmap_targets import encode_heatmaps_tf
from kerapose.data.keypoint_specs import COCO_17
from kerapose.data.keypoint_specs import CROWDPOSE_14
from kerapose.data.keypoint_specs import MPII_16
from kerapose.data.transforms import IMAGENET_MEAN
from kerapose.data.transforms import IMAGENET_STD
from kerapose.data.transforms import AugmentConfig
from kerapose.data.transforms import affine_points
from kerapose.data.transforms import affine_warp_image
from kerapose.data.transforms import augment
from kerapose.data.transforms import compose_affine
from kerapose.data.transforms import default_upper_body_indices
from kerapose.data.transforms import flip_matrix
from kerapose.data.transforms import get_affine_matrix
from kerapose.data.transforms import get_inverse_affine
from kerapose.data.transforms import normalize_image
from kerapose.data.transforms import warp_inverse

# TensorFlow ops only: independent of the Keras backend.
pytestmark = pytest.mark.tf_only

NO_AUG = dict(
    scale_factor=0.0, rotation_prob=0.0, flip_prob=0.0, half_body_prob=0.0
)


def _official_affine(center, scale, rot, output_wh, inv=False):
    """NumPy re-derivation of the official `get_affine_transform`."""
    src_w = scale[0] * 200.0
    dst_w, dst_h = output_wh
    rad = np.pi * rot / 180.0
    sn, cs = np.sin(rad), np.cos(rad)
    src_dir = np.array([src_w * 0.5 * sn, -src_w * 0.5 * cs])
    src = np.zeros((3, 2))
    dst = np.zeros((3, 2))
    src[0] = center
    src[1] = center + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + [0.0, -dst_w * 0.5]
    for pts in (src, dst):
        d = pts[0] - pts[1]
        pts[2] = pts[1] + [-d[1], d[0]]
    if inv:
        src, dst = dst, src
    # Solve dst = M @ [src, 1] for the 2x3 matrix M.
    a = np.concatenate([src, np.ones((3, 1))], axis=1)
    return np.linalg.solve(a, dst).T


def _random_image(shape, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (shape[0] // 8, shape[1] // 8, 3), np.uint8)
    return cv2.resize(small, shape[1::-1], interpolation=cv2.INTER_CUBIC)


def test_affine_matrix_matches_official_formula():
    rng = np.random.default_rng(0)
    for _ in range(25):
        center = rng.uniform(0, 640, 2)
        scale = rng.uniform(0.1, 4.0, 2)
        rot = rng.uniform(-90, 90)
        for out in ((256, 192), (64, 64), (384, 288)):
            got = get_affine_matrix(center, scale, rot, out).numpy()
            want = _official_affine(center, scale, rot, out[::-1])
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
            got = get_affine_matrix(center, scale, rot, out, inverse=True)
            want = _official_affine(center, scale, rot, out[::-1], inv=True)
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-3)


def test_affine_points_center_and_round_trip():
    m = get_affine_matrix([300.0, 200.0], [1.2, 1.6], 30.0, (256, 192))
    inv = get_affine_matrix([300.0, 200.0], [1.2, 1.6], 30.0, (256, 192), True)
    np.testing.assert_allclose(affine_points([300.0, 200.0], m), [96, 128])
    pts = np.random.default_rng(1).uniform(0, 500, (17, 2))
    back = affine_points(affine_points(pts, m), inv).numpy()
    np.testing.assert_allclose(back, pts, atol=1e-3)


@pytest.mark.parametrize("rot, flip", [(0.0, False), (0.0, True), (25.0, True)])
def test_warp_matches_opencv(rot, flip):
    image = _random_image((120, 160))
    m = get_affine_matrix([70.0, 50.0], [0.6, 0.8], rot, (64, 48))
    if flip:
        m = compose_affine(m, flip_matrix(160))
    m = m.numpy()
    want = cv2.warpAffine(image, m, (48, 64), flags=cv2.INTER_LINEAR)
    got = affine_warp_image(image, m, (64, 48)).numpy()
    assert got.shape == (64, 48, 3) and got.dtype == np.float32
    # OpenCV rounds to uint8 and uses fixed-point weights.
    np.testing.assert_allclose(got, want, atol=1.0)
    assert np.abs(got - want).mean() < 0.35
    if flip:
        # Same as warping a mirrored copy with the unflipped matrix.
        mirror = np.array([[-1.0, 0.0, 159.0], [0.0, 1.0, 0.0], [0, 0, 1]])
        mirrored = np.ascontiguousarray(image[:, ::-1])
        plain = cv2.warpAffine(mirrored, m @ mirror, (48, 64))
        np.testing.assert_allclose(got, plain, atol=1.0)


def test_warp_equals_tensorflow_projective_transform():
    # The TensorFlow op the warp replaced: same bilinear sampling and zero
    # border, on tiny and odd-sized images, borders and far-off crops.
    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = rng.integers(1, 30, 2)
        image = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        linear = rng.uniform(-2, 2, (2, 2))
        if trial % 2:  # axis-aligned, possibly mirrored
            linear = np.diag(rng.uniform(0.2, 2, 2) * rng.choice([-1, 1], 2))
        shift = rng.uniform(-10, max(h, w) + 10, 2)
        inverse = np.c_[linear, shift].astype(np.float32)
        got = warp_inverse(image, inverse, (12, 10))
        want = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(image, tf.float32)[None],
            transforms=np.r_[inverse.ravel(), 0, 0][None].astype(np.float32),
            output_shape=[12, 10],
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="CONSTANT",
        )[0]
        np.testing.assert_allclose(got, want, atol=2e-3)
    # Whole-pixel shifts copy pixels; the one-pixel frame is fill.
    image = rng.integers(0, 256, (5, 7, 3)).astype(np.uint8)
    got = warp_inverse(image, [[1, 0, -1], [0, 1, -1]], (7, 9)).numpy()
    np.testing.assert_array_equal(got[1:6, 1:8], image)
    got[1:6, 1:8] = 0
    assert not got.any()
    # Normalising in the same pass equals normalising afterwards.
    m = get_affine_matrix([3.0, 2.0], [0.03, 0.04], 30.0, (8, 6))
    np.testing.assert_allclose(
        affine_warp_image(image, m, (8, 6), normalize=True),
        normalize_image(affine_warp_image(image, m, (8, 6))),
        atol=1e-5,
    )


def test_geometry_ops_broadcast_over_a_batch():
    rng = np.random.default_rng(2)
    center = rng.uniform(0, 300, (5, 2)).astype(np.float32)
    scale = rng.uniform(0.2, 2, (5, 2)).astype(np.float32)
    rot = rng.uniform(-90, 90, 5).astype(np.float32)
    width = rng.integers(50, 400, 5)
    m = get_affine_matrix(center, scale, rot, (64, 48))
    f = compose_affine(m, flip_matrix(width))
    inv = get_inverse_affine(f)
    pts = rng.uniform(0, 300, (5, 17, 2))
    mapped = affine_points(pts, f[:, None])
    for i in range(5):
        mi = get_affine_matrix(center[i], scale[i], rot[i], (64, 48))
        fi = compose_affine(mi, flip_matrix(width[i]))
        np.testing.assert_allclose(m[i], mi, rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(f[i], fi, rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(
            inv[i], get_inverse_affine(fi), rtol=1e-5, atol=1e-3
        )
        np.testing.assert_allclose(
            mapped[i], affine_points(pts[i], fi), rtol=1e-5, atol=1e-3
        )


def test_batched_augment_matches_the_recipe():
    # One seed draws independent parameters for every instance of a batch;
    # each instance's result is a valid single-instance augmentation.
    batch = {k: tf.stack([v] * 400) for k, v in _sample().items()}
    out = augment(batch, [3, 9], COCO_17, 0.75, AugmentConfig())
    rot, flips = out["rotation"].numpy(), out["flip"].numpy()
    assert rot.shape == flips.shape == (400,)
    assert 0.5 < np.mean(rot != 0) < 0.7 and 0.4 < flips.mean() < 0.6
    assert len(np.unique(out["scale"].numpy()[:, 0])) > 200  # not one draw
    cfg = AugmentConfig(**{**NO_AUG, "flip_prob": 1.0})
    flipped = augment(batch, [3, 9], COCO_17, 0.75, cfg)
    single = augment(_sample(), [3, 9], COCO_17, 0.75, cfg)
    for key in ("center", "keypoints", "visibility"):
        np.testing.assert_allclose(flipped[key][7], single[key], rtol=1e-6)


def test_flip_matrix_is_the_official_mirror():
    pts = affine_points([[0.0, 5.0], [99.0, 7.0]], flip_matrix(100)).numpy()
    np.testing.assert_allclose(pts, [[99.0, 5.0], [0.0, 7.0]])


def test_normalize_image():
    pixel = np.array([[[255, 0, 128]]], np.uint8)
    want = (pixel / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(normalize_image(pixel), want, rtol=1e-5)
    got = normalize_image(pixel / 255.0, max_value=1.0)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert normalize_image(pixel).dtype == tf.float32


def test_upper_body_defaults_follow_official_splits():
    assert default_upper_body_indices(COCO_17) == tuple(range(11))
    assert default_upper_body_indices(MPII_16) == tuple(range(7, 16))
    assert default_upper_body_indices(CROWDPOSE_14) == (
        0,
        1,
        2,
        3,
        4,
        5,
        12,
        13,
    )


def _sample(kpts=None, vis=None, width=200):
    rng = np.random.default_rng(3)
    if kpts is None:
        kpts = rng.uniform(40, 160, (17, 2))
    if vis is None:
        vis = np.full(17, 2.0)
    return {
        "center": tf.constant([100.0, 100.0]),
        "scale": tf.constant([0.6, 0.8]),
        "keypoints": tf.constant(kpts, tf.float32),
        "visibility": tf.constant(vis, tf.float32),
        "image_width": tf.constant(width),
    }


def test_flip_swaps_left_and_right():
    # A left wrist on the image's left and a right wrist further right.
    kpts = np.zeros((17, 2))
    vis = np.zeros(17)
    kpts[9], vis[9] = (30.0, 80.0), 2
    kpts[10], vis[10] = (70.0, 90.0), 1
    cfg = AugmentConfig(**{**NO_AUG, "flip_prob": 1.0})
    out = augment(_sample(kpts, vis), [1, 2], COCO_17, 0.75, cfg)
    assert bool(out["flip"])
    k = out["keypoints"].numpy()
    v = out["visibility"].numpy()
    # The left wrist is now on the right side, under the right-wrist index.
    np.testing.assert_allclose(k[10], [200 - 30 - 1, 80])
    np.testing.assert_allclose(k[9], [200 - 70 - 1, 90])
    assert (v[9], v[10]) == (1, 2)
    assert k[10, 0] > 100 > kpts[9, 0]
    np.testing.assert_allclose(out["center"], [200 - 100 - 1, 100])


def test_no_augmentation_is_identity():
    sample = _sample()
    out = augment(sample, [3, 4], COCO_17, 0.75, AugmentConfig(**NO_AUG))
    assert float(out["rotation"]) == 0.0 and not bool(out["flip"])
    for key in ("center", "scale", "keypoints", "visibility"):
        np.testing.assert_allclose(out[key], sample[key])


def _official_half_body(kpts, vis, upper_ids, pick_upper, aspect=0.75):
    upper = [kpts[i] for i in range(17) if vis[i] > 0 and i in upper_ids]
    lower = [kpts[i] for i in range(17) if vis[i] > 0 and i not in upper_ids]
    if pick_upper and len(upper) > 2:
        sel = upper
    else:
        sel = lower if len(lower) > 2 else upper
    sel = np.array(sel)
    center = sel.mean(axis=0)
    w, h = sel.max(axis=0) - sel.min(axis=0)
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return center, np.array([w, h]) / 200.0 * 1.5


def test_half_body_matches_official():
    cfg = AugmentConfig(**{**NO_AUG, "half_body_prob": 1.0})
    seen = set()
    for seed in range(12):
        sample = _sample()
        kpts = sample["keypoints"].numpy()
        out = augment(sample, [seed, 0], COCO_17, 0.75, cfg)
        candidates = [
            _official_half_body(kpts, np.full(17, 2), range(11), pick)
            for pick in (True, False)
        ]
        got = (out["center"].numpy(), out["scale"].numpy())
        match = [
            np.allclose(got[0], c, rtol=1e-5) and np.allclose(got[1], s)
            for c, s in candidates
        ]
        assert any(match)
        seen.add(match.index(True))
    assert seen == {0, 1}  # both halves get picked
    # Needs more than 8 labelled joints.
    vis = np.r_[np.full(8, 2.0), np.zeros(9)]
    out = augment(_sample(vis=vis), [0, 0], COCO_17, 0.75, cfg)
    np.testing.assert_allclose(out["scale"], [0.6, 0.8])


def test_random_ranges_follow_the_recipe():
    cfg = AugmentConfig(half_body_prob=0.0)
    fn = tf.function(lambda seed: augment(_sample(), seed, COCO_17, 0.75, cfg))
    outs = [fn(tf.constant([i, 7], tf.int64)) for i in range(300)]
    rot = np.array([float(o["rotation"]) for o in outs])
    flips = np.array([bool(o["flip"]) for o in outs])
    assert np.abs(rot).max() <= 90.0 and np.abs(rot).max() > 45.0
    assert 0.5 < np.mean(rot != 0) < 0.7
    assert 0.4 < flips.mean() < 0.6
    # Scale: 0.65x..1.35x of the box, both sides alike.
    scales = np.array([o["scale"].numpy() for o in outs]) / [0.6, 0.8]
    np.testing.assert_allclose(scales[:, 0], scales[:, 1], rtol=1e-6)
    assert scales.min() >= 0.65 - 1e-6 and scales.max() <= 1.35 + 1e-6
    assert scales.min() < 0.7 and scales.max() > 1.3
    # Same seed, same draw.
    again = fn(tf.constant([5, 7], tf.int64))
    for key in ("center", "scale", "rotation", "flip"):
        np.testing.assert_array_equal(again[key], outs[5][key])


@pytest.mark.parametrize(
    "codec",
    [
        MSRAHeatmap(),
        MSRAHeatmap((64, 64), (16, 16), sigma=2.0),
        MSRAHeatmap((384, 288), (96, 72), sigma=3.0),
        MSRAHeatmap((64, 48), (16, 12), unbiased=True),
    ],
    ids=["256x192", "64x64", "384x288", "unbiased"],
)
def test_tf_encode_equals_numpy_encode(codec):
    rng = np.random.default_rng(0)
    h, w = codec.input_size
    batch = []
    for _ in range(20):
        kpts = rng.uniform([-0.3 * w, -0.3 * h], [1.3 * w, 1.3 * h], (17, 2))
        kpts = kpts.astype(np.float32)
        vis = rng.integers(0, 3, 17)
        want_maps, want_w = codec.encode(kpts, vis)
        maps, weights = encode_heatmaps_tf(kpts, vis, codec)
        np.testing.assert_allclose(maps, want_maps, atol=1e-6)
        np.testing.assert_array_equal(weights, want_w)
        batch.append((kpts, vis, want_maps, want_w))
    # A batch in one call: the same maps as one by one.
    kpts, vis, want_maps, want_w = (np.stack(x) for x in zip(*batch))
    maps, weights = encode_heatmaps_tf(kpts, vis, codec)
    np.testing.assert_allclose(maps, want_maps, atol=1e-6)
    np.testing.assert_array_equal(weights, want_w)
    # Far outside the crop: weight 0 and an empty map, like the reference.
    kpts = np.array([[-500.0, 10.0], [10.0, 1e9]] + [[8.0, 8.0]] * 15)
    maps, weights = encode_heatmaps_tf(kpts, np.ones(17), codec)
    assert weights.numpy()[:2].tolist() == [0.0, 0.0]
    assert float(tf.reduce_max(maps[..., :2])) == 0.0
    maps, weights = encode_heatmaps_tf(kpts, np.zeros(17), codec)
    assert (
        float(tf.reduce_sum(weights)) == 0 and float(tf.reduce_max(maps)) == 0
    )
