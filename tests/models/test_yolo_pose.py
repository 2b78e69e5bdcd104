"""YOLO-Pose backbone, layers and estimator (tiny configurations)."""

import os
import tempfile

import keras
import numpy as np
import pytest

from kerapose.layers import C3
from kerapose.layers import SPP
from kerapose.layers import ConvBNAct
from kerapose.layers import Focus
from kerapose.layers import YOLOPoseLevelHead
from kerapose.models import YOLOPoseBackbone
from kerapose.models import YOLOPoseEstimator
from kerapose.models.yolo_pose import decode_levels
from kerapose.models.yolo_pose.yolo_pose_presets import presets
from kerapose.testing.test_case import TestCase
from kerapose.testing.test_case import to_numpy
from kerapose.utils.model_stats import count_macs
from kerapose.utils.model_stats import count_params

TINY = {"width_multiple": 0.0625, "depth_multiple": 0.33}


def _images(shape, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(batch, *shape)).astype("float32")


@pytest.fixture(scope="module")
def tiny():
    backbone = YOLOPoseBackbone(image_shape=(128, 64, 3), **TINY)
    return YOLOPoseEstimator(backbone)


class YOLOLayersTest(TestCase):
    def test_focus_is_space_to_depth_then_conv(self):
        x = _images((4, 6, 3), batch=1)
        layer = Focus(8, activation=None)
        out = layer(x)
        self.assertEqual(tuple(out.shape), (1, 2, 3, 8))
        # Channel (dy * 2 + dx) * C + c holds pixel (2y + dy, 2x + dx).
        kernel = np.zeros((3, 3, 12, 8), "float32")
        kernel[1, 1, 1 * 3 + 2, 0] = 1.0  # dy=0, dx=1, c=2
        kernel[1, 1, 2 * 3 + 0, 1] = 1.0  # dy=1, dx=0, c=0
        layer.conv.conv.kernel.assign(kernel)
        bn = layer.conv.bn
        scale = np.sqrt(1.0 + bn.epsilon)  # undo the BN at its init
        out = to_numpy(layer(x, training=False)) * scale
        self.assertAllClose(out[0, :, :, 0], x[0, 0::2, 1::2, 2], atol=1e-6)
        self.assertAllClose(out[0, :, :, 1], x[0, 1::2, 0::2, 0], atol=1e-6)

    def test_conv_focus_has_a_strided_slice_conv(self):
        layer = Focus(8, learned_slice=True)
        out = layer(_images((8, 4, 3)))
        self.assertEqual(tuple(out.shape), (2, 4, 2, 8))
        self.assertEqual(
            tuple(layer.conv_slice.conv.kernel.shape), (3, 3, 3, 12)
        )
        self.run_serialization_test(layer)

    def test_c3_layer(self):
        self.run_layer_test(
            C3,
            {"filters": 16, "num_blocks": 2},
            _images((8, 8, 8)),
            (2, 8, 8, 16),
            expected_num_trainable_weights=3 * 3 + 2 * 2 * 3,
            run_training_check=False,
        )

    def test_spp_equals_one_pool_per_size(self):
        layer = SPP(8, pool_sizes=(5,))
        x = _images((8, 8, 6))
        layer(x)
        inner = to_numpy(layer.cv1(x, training=False))
        chained = to_numpy(layer.pool(layer.pool(inner)))
        direct = keras.layers.MaxPooling2D(5, 1, padding="same")(inner)
        self.assertAllClose(chained, direct)
        with self.assertRaisesRegex(ValueError, "odd ints >= 3"):
            SPP(8, pool_sizes=(4,))

    def test_level_head_concatenates_then_reshapes_per_anchor(self):
        head = YOLOPoseLevelHead(2, depthwise_head=False)
        x = _images((4, 2, 8))
        out = to_numpy(head(x))
        self.assertEqual(out.shape, (2, 4, 2, 3, 12))
        det = to_numpy(head.det(x))
        kpt = to_numpy(head.kpt_out(x))
        flat = np.concatenate([det, kpt], axis=-1)  # 18 + 18 channels
        self.assertAllClose(out.reshape(2, 4, 2, 36), flat, atol=1e-6)
        # Anchor 1 starts with box channel 12 and ends in keypoint ones.
        self.assertAllClose(out[..., 1, 0], det[..., 12], atol=1e-6)
        self.assertAllClose(out[..., 1, -1], kpt[..., 5], atol=1e-6)

    def test_depthwise_head_and_depthwise_conv_bn_act(self):
        head = YOLOPoseLevelHead(17)
        head(_images((4, 4, 16)))
        shapes = [tuple(u.conv.kernel.shape) for u in head.kpt_units]
        self.assertEqual(shapes[0], (3, 3, 16, 1))
        self.assertEqual(shapes[1], (1, 1, 16, 16))
        self.assertLen(head.kpt_units, 11)
        self.run_serialization_test(head)
        unit = ConvBNAct(8, 3, depthwise=True)
        self.assertTrue(unit.get_config()["depthwise"])
        self.assertNotIn("depthwise", ConvBNAct(8).get_config())
        with self.assertRaisesRegex(ValueError, "keeps the channel count"):
            unit(_images((4, 4, 6)))


def test_backbone_pyramid(tiny):
    # (Serialization: through the estimator's config.)
    backbone = tiny.backbone
    out = backbone(_images((128, 64, 3)))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "P3": (2, 16, 8, 16),
        "P4": (2, 8, 4, 32),
        "P5": (2, 4, 2, 48),
        "P6": (2, 2, 1, 64),
    }
    assert backbone.output_channels == [16, 32, 48, 64]
    for level, tensor in backbone.pyramid_outputs.items():
        stride = 2 ** int(level[1:])
        assert tuple(tensor.shape[1:3]) == (128 // stride, 64 // stride)
    paths = [v.path for v in backbone.weights]
    assert len(set(paths)) == len(paths)


class YOLOPoseConfigTest(TestCase):
    def test_bad_configs_are_explained(self):
        with self.assertRaisesRegex(ValueError, "multiples of 64"):
            YOLOPoseBackbone(image_shape=(96, 64, 3), **TINY)
        with self.assertRaisesRegex(ValueError, "width_multiple"):
            YOLOPoseBackbone(width_multiple=0, image_shape=(64, 64, 3))
        with self.assertRaisesRegex(ValueError, "conv_focus"):
            YOLOPoseBackbone(stem="slice", **TINY)
        with self.assertRaisesRegex(ValueError, r"\(H, W, 3\)"):
            YOLOPoseBackbone(image_shape=(64, 64), **TINY)
        with self.assertRaisesRegex(ValueError, "multiple of 64"):
            YOLOPoseBackbone(**TINY)(_images((96, 64, 3), batch=1))
        backbone = YOLOPoseBackbone(image_shape=(64, 64, 3), **TINY)
        with self.assertRaisesRegex(ValueError, "num_keypoints"):
            YOLOPoseEstimator(backbone, num_keypoints=0)
        with self.assertRaisesRegex(ValueError, "4 lists"):
            YOLOPoseEstimator(backbone, anchors=[[(10, 13)]] * 3)
        with self.assertRaisesRegex(ValueError, "positive"):
            YOLOPoseEstimator(backbone, anchors=[[(10, -1)]] * 4)
        other = keras.Sequential([keras.Input((64, 64, 3))])
        with self.assertRaisesRegex(ValueError, "YOLOPoseBackbone"):
            YOLOPoseEstimator(other)


def test_estimator_outputs_and_config(tiny):
    assert tiny.task == "single_stage"
    assert tiny.strides == [8, 16, 32, 64]
    assert tiny.anchors[3] == [[436, 615], [739, 380], [925, 792]]
    raw = tiny(_images((128, 64, 3)))
    assert [tuple(r.shape) for r in raw] == [
        (2, 16, 8, 3, 57),
        (2, 8, 4, 3, 57),
        (2, 4, 2, 3, 57),
        (2, 2, 1, 3, 57),
    ]
    # Official objectness / class priors in the box-conv bias.
    bias = to_numpy(tiny.get_layer("head_p3").det.bias).reshape(3, 6)
    np.testing.assert_allclose(bias[:, 4], np.log(8 / 80**2), rtol=1e-6)
    np.testing.assert_allclose(bias[:, 5], np.log(0.6 / 0.01), rtol=1e-6)
    TestCase().run_serialization_test(tiny)
    assert tiny.head_prefixes[0] == "head_p3/kpt_out/"


def test_black_image_gives_finite_raw_output(tiny):
    raw = tiny(np.zeros((1, 128, 64, 3), "float32"), training=False)
    decoded = to_numpy(decode_levels(raw, tiny.anchors, tiny.strides))
    assert decoded.shape == (1, 3 * (128 + 32 + 8 + 2), 57)
    assert np.all(np.isfinite(decoded))


def test_saving_round_trip(tiny):
    x = _images((128, 64, 3), batch=1)
    expected = [to_numpy(r) for r in tiny(x, training=False)]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        tiny.save(path)
        revived = keras.models.load_model(path)
    assert type(revived) is YOLOPoseEstimator
    for got, want in zip(revived(x, training=False), expected):
        np.testing.assert_allclose(to_numpy(got), want, atol=1e-5)


class _MeanSquare:
    """A stand-in loss on the raw levels (the recipe's loss is elsewhere)."""

    def __init__(self):
        self.targets = None

    def __call__(self, targets, raw_levels):
        self.targets = targets
        return sum(keras.ops.mean(keras.ops.square(r)) for r in raw_levels)


def test_fit_and_predict_delegate_to_loss_fn_and_decoder():
    backbone = YOLOPoseBackbone(image_shape=(64, 64, 3), **TINY)
    model = YOLOPoseEstimator(
        backbone,
        num_keypoints=5,
        decoder=None,
        depthwise_keypoint_head=False,
    )
    model.loss_fn = _MeanSquare()
    model._decoder = lambda raw: {
        "rows": decode_levels(raw, model.anchors, model.strides)
    }
    x = _images((64, 64, 3))
    y = {
        "boxes": np.zeros((2, 3, 4), "float32"),
        "keypoints": np.zeros((2, 3, 5, 3), "float32"),
        "valid": np.zeros((2, 3), "float32"),
    }
    # TensorFlow: one eager step, tracing ~200 layers costs more than it
    # proves here. JAX: compiled, its eager gradient is slower still.
    model.compile(run_eagerly=keras.backend.backend() == "tensorflow")
    before = to_numpy(model.get_layer("head_p6").kpt_out.kernel).copy()
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert sorted(model.loss_fn.targets) == ["boxes", "keypoints", "valid"]
    after = to_numpy(model.get_layer("head_p6").kpt_out.kernel)
    assert not np.array_equal(before, after)
    out = model.predict(x, verbose=0)
    assert out["rows"].shape == (2, 3 * (64 + 16 + 4 + 1), 6 + 15)
    with pytest.raises(ValueError, match="targets dict"):
        model.compute_loss(x, np.zeros((2, 3)), model(x))


@pytest.mark.large
@pytest.mark.parametrize(
    "name, params, gmacs",
    [
        # README section 6 (official classes, conv MACs only).
        ("yolo_pose_s6", 15_114_860, 10.092),
        ("yolo_pose_s6_ti_lite", 12_560_328, 8.573),
        ("yolo_pose_m6", 41_430_924, 66.125),
    ],
)
def test_full_size_params_and_macs(name, params, gmacs):
    model = keras.saving.deserialize_keras_object(presets[name]["config"])
    assert count_params(model) == params
    macs = count_macs(model) / 1e9
    print(f"{name}: {count_params(model):,} params, {macs:.4f} GMACs")
    # The README gives 3 decimals (8.5735 is listed as 8.573).
    assert abs(macs - gmacs) < 1e-3


def test_sigmas_reach_the_loss_and_the_config():
    from kerapose.data.keypoint_specs import CROWDPOSE_14

    backbone = YOLOPoseBackbone(
        width_multiple=0.0625, depth_multiple=0.33, image_shape=(64, 64, 3)
    )
    sigmas = list(CROWDPOSE_14.sigmas)
    model = YOLOPoseEstimator(backbone, num_keypoints=14, sigmas=sigmas)
    assert model.get_config()["sigmas"] == pytest.approx(sigmas)
    assert model.loss_fn.get_config()["sigmas"] == pytest.approx(sigmas)
    with pytest.raises(ValueError, match="one per keypoint"):
        YOLOPoseEstimator(backbone, num_keypoints=14, sigmas=sigmas[:3])
