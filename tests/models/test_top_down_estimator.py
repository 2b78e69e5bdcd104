import numpy as np
import pytest

from kerapose.codecs import MSRAHeatmap
from kerapose.models import HRNetBackbone
from kerapose.models import TopDownPoseEstimator
from kerapose.testing.test_case import TestCase
from kerapose.testing.test_case import to_numpy


def tiny_estimator(num_keypoints=17, image_shape=(64, 64, 3)):
    backbone = HRNetBackbone(
        stage_channels=(8, 16, 32, 64),
        stage_modules=(1, 1, 1),
        stage_blocks=1,
        image_shape=image_shape,
    )
    return TopDownPoseEstimator(backbone, num_keypoints=num_keypoints)


def training_batch(codec, batch=2, num_keypoints=17, seed=0):
    rng = np.random.default_rng(seed)
    h, w = codec.input_size
    images = rng.normal(size=(batch, h, w, 3)).astype("float32")
    keypoints = rng.uniform(8, min(h, w) - 8, size=(batch, num_keypoints, 2))
    visible = rng.integers(0, 2, size=(batch, num_keypoints))
    encoded = [codec.encode(k, v) for k, v in zip(keypoints, visible)]
    heatmaps = np.stack([e[0] for e in encoded])
    weights = np.stack([e[1] for e in encoded])
    return images, heatmaps, weights


class TopDownEstimatorTest(TestCase):
    def test_estimator_basics(self):
        model = tiny_estimator()
        images, heatmaps, weights = training_batch(model.codec)
        self.run_estimator_test(model, images, heatmaps, weights)

    def test_serialization_and_saving(self):
        model = tiny_estimator(num_keypoints=5)
        revived = self.run_serialization_test(model)
        assert revived.num_keypoints == 5
        assert isinstance(revived.codec, MSRAHeatmap)
        images, _, _ = training_batch(model.codec)
        self.run_model_saving_test(model, images)

    def test_no_people_gives_zero_loss(self):
        model = tiny_estimator()
        model.compile()
        images, heatmaps, _ = training_batch(model.codec)
        loss = model.evaluate(
            images,
            np.zeros_like(heatmaps),
            sample_weight=np.zeros((2, 17), "float32"),
            verbose=0,
        )
        assert loss == 0.0

    def test_predict_decodes_in_input_pixels(self):
        model = tiny_estimator()
        out = model.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0)
        assert set(out) == {"heatmaps", "keypoints", "scores"}
        assert out["heatmaps"].shape == (1, 16, 16, 17)
        assert np.all(out["keypoints"] >= 0)
        assert np.all(out["keypoints"] <= 64)

    def test_bad_inputs(self):
        model = tiny_estimator()
        with self.assertRaisesRegex(ValueError, "3-channel"):
            model(np.zeros((1, 64, 64, 1), "float32"))
        with self.assertRaisesRegex(ValueError, "rank-4.*images\\[None\\]"):
            model(np.zeros((64, 64, 3), "float32"))
        with self.assertRaisesRegex(TypeError, "float images.*uint8"):
            model(np.zeros((1, 64, 64, 3), "uint8"))
        with self.assertRaisesRegex(ValueError, "built for 64x64"):
            model(np.zeros((1, 70, 64, 3), "float32"))
        with self.assertRaisesRegex(ValueError, "multiple of 32"):
            tiny_estimator(image_shape=(None, None, 3))(
                np.zeros((1, 70, 64, 3), "float32")
            )
        with self.assertRaisesRegex(TypeError, "image batch"):
            model([[1.0, 2.0]])
        for bad in (0, -1, 2.5, True, "17"):
            with self.assertRaisesRegex(ValueError, "positive int"):
                tiny_estimator(num_keypoints=bad)


def test_codec_round_trip_within_half_heatmap_pixel():
    codec = MSRAHeatmap(input_size=(64, 48), heatmap_size=(16, 12))
    rng = np.random.default_rng(1)
    keypoints = rng.uniform(10, 38, size=(17, 2))
    heatmaps, weights = codec.encode(keypoints, np.ones(17))
    decoded, scores = codec.decode(heatmaps[None])
    error = np.abs(to_numpy(decoded)[0] - keypoints) / 4
    assert error.max() <= 0.5 + 1e-6
    np.testing.assert_allclose(to_numpy(scores)[0], 1.0)
    assert weights.sum() == 17


def test_codec_quarter_shift_towards_higher_neighbour():
    codec = MSRAHeatmap(input_size=(32, 32), heatmap_size=(8, 8))
    heatmaps = np.zeros((1, 8, 8, 1), "float32")
    heatmaps[0, 4, 4, 0] = 1.0
    heatmaps[0, 4, 5, 0] = 0.5  # right neighbour higher -> x + 0.25
    heatmaps[0, 3, 4, 0] = 0.5  # upper neighbour higher -> y - 0.25
    keypoints, _ = codec.decode(heatmaps)
    np.testing.assert_allclose(to_numpy(keypoints)[0, 0], [4.25 * 4, 3.75 * 4])


def test_codec_invisible_and_outside_get_zero_weight():
    codec = MSRAHeatmap(input_size=(64, 48), heatmap_size=(16, 12))
    keypoints = np.array([[20.0, 20.0], [20.0, 20.0], [500.0, 20.0]])
    heatmaps, weights = codec.encode(keypoints, np.array([2, 0, 2]))
    np.testing.assert_array_equal(weights, [1, 0, 0])
    assert heatmaps[..., 1:].max() == 0


def test_codec_validates():
    with pytest.raises(ValueError, match="height, width"):
        MSRAHeatmap(input_size=(64,), heatmap_size=(16, 12))
    with pytest.raises(ValueError, match="positive"):
        MSRAHeatmap(sigma=0)


def _numpy_dark(heatmap, kernel=11):
    """DARK decoding of one (h, w) map with OpenCV, as the DARK paper does."""
    import cv2

    h, w = heatmap.shape
    py, px = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    b = (kernel - 1) // 2
    padded = np.zeros((h + 2 * b, w + 2 * b), np.float64)
    padded[b:-b, b:-b] = heatmap
    blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[b:-b, b:-b]
    blurred *= heatmap.max() / blurred.max()
    m = np.log(np.maximum(blurred, 1e-10))
    coord = np.array([px, py], np.float64)
    if 1 < px < w - 2 and 1 < py < h - 2:
        dx = 0.5 * (m[py, px + 1] - m[py, px - 1])
        dy = 0.5 * (m[py + 1, px] - m[py - 1, px])
        dxx = 0.25 * (m[py, px + 2] - 2 * m[py, px] + m[py, px - 2])
        dxy = 0.25 * (
            m[py + 1, px + 1]
            - m[py - 1, px + 1]
            - m[py + 1, px - 1]
            + m[py - 1, px - 1]
        )
        dyy = 0.25 * (m[py + 2, px] - 2 * m[py, px] + m[py - 2, px])
        hessian = np.array([[dxx, dxy], [dxy, dyy]])
        if np.linalg.det(hessian) != 0:
            coord -= np.linalg.inv(hessian) @ np.array([dx, dy])
    return coord


def test_dark_refinement_matches_reference_and_beats_quarter_shift():
    rng = np.random.default_rng(3)
    keypoints = rng.uniform(12, 36, size=(17, 2))
    codec = MSRAHeatmap(
        input_size=(64, 48),
        heatmap_size=(16, 12),
        unbiased=True,
        refinement="dark",
    )
    heatmaps, _ = codec.encode(keypoints, np.ones(17))
    heatmaps = heatmaps + rng.uniform(0, 0.01, size=heatmaps.shape)
    dark, _ = codec.decode(heatmaps[None].astype("float32"))
    dark = to_numpy(dark)[0]
    reference = np.stack([_numpy_dark(heatmaps[..., i]) * 4 for i in range(17)])
    np.testing.assert_allclose(dark, reference, atol=1e-3)
    quarter = MSRAHeatmap(input_size=(64, 48), heatmap_size=(16, 12))
    plain, _ = quarter.decode(heatmaps[None].astype("float32"))
    dark_error = np.abs(dark - keypoints).mean()
    plain_error = np.abs(to_numpy(plain)[0] - keypoints).mean()
    assert dark_error < 0.5 * plain_error


def test_codec_refinement_validates():
    with pytest.raises(ValueError, match="refinement"):
        MSRAHeatmap(refinement="argmax")
    with pytest.raises(ValueError, match="odd"):
        MSRAHeatmap(blur_kernel_size=4)


def test_wrong_input_size_names_the_expected_shape():
    from kerapose import zoo

    model = zoo.load("test_hrnet", input_shape=(64, 32, 3), compile=False)
    message = r"built for 64x32 \(H x W\).*\(B, 64, 32, 3\).*\(1, 96, 32, 3\)"
    bad = np.zeros((1, 96, 32, 3), "float32")
    with pytest.raises(ValueError, match=message):
        model.predict(bad, verbose=0)
    with pytest.raises(ValueError, match=message):
        model(bad)
    # On JAX an error inside Keras' predict loop left the variables unset.
    out = model.predict(np.zeros((1, 64, 32, 3), "float32"), verbose=0)
    assert out["keypoints"].shape == (1, 17, 2)


def test_dark_refinement_stays_on_the_heatmap():
    # Noise (an untrained model's heatmaps) has no clear peak: the Newton
    # step went to x = -135 and 354 on a 64-pixel crop.
    codec = MSRAHeatmap(
        input_size=(64, 64), heatmap_size=(16, 16), refinement="dark"
    )
    rng = np.random.default_rng(0)
    heatmaps = rng.normal(scale=1e-3, size=(8, 16, 16, 17)).astype("float32")
    keypoints = to_numpy(codec.decode(heatmaps)[0])
    assert keypoints.min() >= 0.0
    assert keypoints.max() <= 15 * 4.0
