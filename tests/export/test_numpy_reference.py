"""The NumPy reference post-processor equals the kerapose/Keras path."""

import keras
import numpy as np

from kerapose.codecs import MSRAHeatmap
from kerapose.data import keypoint_specs
from kerapose.data.coco import BOX_PADDING
from kerapose.data.coco import PIXEL_STD
from kerapose.data.coco import box_to_center_scale
from kerapose.export import numpy_reference as ref
from kerapose.inference.top_down import IMAGENET_MEAN
from kerapose.inference.top_down import IMAGENET_STD
from kerapose.inference.top_down import crop_people
from kerapose.inference.top_down import keypoints_to_image


def test_constants_match_the_package():
    np.testing.assert_array_equal(ref.IMAGENET_MEAN, IMAGENET_MEAN)
    np.testing.assert_array_equal(ref.IMAGENET_STD, IMAGENET_STD)
    assert (ref.PIXEL_STD, ref.BOX_PADDING) == (PIXEL_STD, BOX_PADDING)
    assert ref.COCO_SKELETON == keypoint_specs.COCO_17.skeleton


def test_decode_equals_the_codec():
    codec = MSRAHeatmap(input_size=(64, 48), heatmap_size=(16, 12))
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(4, 16, 12, 17)).astype("float32")
    maps[0, :, :, 3] = 0.5  # a tie: the first maximum wins
    maps[1, :, :, 4] = -1.0  # nothing found: (0, 0)
    out = ref.decode_heatmaps(maps, (64, 48))
    keypoints, scores = codec.decode(maps)
    np.testing.assert_allclose(
        out[..., :2], keras.ops.convert_to_numpy(keypoints), atol=1e-5
    )
    np.testing.assert_allclose(out[..., 2], keras.ops.convert_to_numpy(scores))
    assert tuple(out[1, 4, :2]) == (0.0, 0.0)


def test_crop_and_map_back_equal_kerapose_inference():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    box, size = (10.0, 20.0, 40.0, 70.0), (64, 48)
    crop, inverse = ref.preprocess(image, box, size)
    center, scale = box_to_center_scale(box, size[1] / size[0])
    expected = crop_people(image, [center], [scale], size)
    assert crop.shape == (1, 64, 48, 3)
    # float64 vs float32 box geometry: an interpolation weight may differ
    # in its last bit, a tiny fraction of one grey level.
    np.testing.assert_allclose(crop, expected, atol=0.02)
    points = rng.uniform(0, 48, (1, 17, 2)).astype("float32")
    with_scores = np.concatenate([points, np.ones((1, 17, 1))], -1)
    mapped = ref.keypoints_to_image(with_scores, inverse)
    np.testing.assert_allclose(
        mapped[..., :2],
        keypoints_to_image(points, [center], [scale], size),
        atol=1e-3,
    )
    assert np.all(mapped[..., 2] == 1.0)


def test_postprocess_takes_both_layouts():
    maps = np.zeros((1, 16, 12, 17), "float32")
    maps[0, 5, 6, :] = 1.0
    maps[0, 5, 7, :] = 0.5  # right neighbour higher: +1/4 pixel in x
    inverse = np.array([[2.0, 0.0, 10.0], [0.0, 2.0, 20.0]])
    from_maps = ref.postprocess(maps, (64, 48), inverse)
    decoded = ref.decode_heatmaps(maps, (64, 48))
    from_decoded = ref.postprocess(decoded, (64, 48), inverse)
    np.testing.assert_allclose(from_maps, from_decoded)
    np.testing.assert_allclose(from_maps[0], [2 * 25.0 + 10, 2 * 20 + 20, 1])
