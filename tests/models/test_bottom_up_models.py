"""Bottom-up networks: AE stacked hourglass, HigherHRNet, the estimator."""

import os
import tempfile

import keras
import numpy as np
import pytest

from kerapose import zoo
from kerapose.layers import ConvActBN
from kerapose.layers import HourglassModule
from kerapose.models import BottomUpPoseEstimator
from kerapose.models import HigherHRNetHead
from kerapose.models import HourglassBackbone
from kerapose.testing.test_case import TestCase
from kerapose.testing.test_case import to_numpy
from kerapose.utils import count_macs
from kerapose.utils import count_params

# The reference fixtures' shapes: non-square, H != W at every resolution.
AE_SHAPE = (128, 64, 3)
HHR_SHAPE = (128, 96, 3)
TINY_AE = {"num_stacks": 2, "inp_dim": 16, "increase": 8, "inner_increase": 8}


def _x(shape, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, *shape)).astype("float32")


def _shapes(outputs):
    return [tuple(o.shape) for o in outputs]


@pytest.fixture(scope="module")
def hourglass():
    return zoo.load("test_hourglass_ae", compile=False)


@pytest.fixture(scope="module")
def higherhrnet():
    return zoo.load("test_higherhrnet", compile=False)


def test_hourglass_outputs_and_attributes(hourglass):
    x = _x(AE_SHAPE)
    outputs = hourglass(x)
    assert _shapes(outputs) == [(2, 32, 16, 68)] * 2
    assert hourglass.task == "bottom_up"
    assert hourglass.num_keypoints == 17
    assert hourglass.output_strides == [4, 4]
    assert hourglass.tag_outputs == [True, True]
    assert hourglass.heatmap_outputs_for_test == [False, True]
    assert hourglass.tag_outputs_for_test == [False, True]
    assert hourglass.output_resolution_index == [0, 0]
    assert hourglass.tag_dim == 1 and hourglass.tag_channels == 17
    assert hourglass.input_normalization == "unit"
    # The stacks differ: the second refines the first.
    assert not np.allclose(to_numpy(outputs[0]), to_numpy(outputs[1]))
    predicted = hourglass.predict(x, verbose=0)
    for got, want in zip(predicted, outputs):
        np.testing.assert_allclose(got, to_numpy(want), atol=1e-5)


def test_higherhrnet_outputs_and_attributes(higherhrnet):
    outputs = higherhrnet(_x(HHR_SHAPE))
    assert _shapes(outputs) == [(2, 32, 24, 34), (2, 64, 48, 17)]
    assert higherhrnet.output_strides == [4, 2]
    assert higherhrnet.tag_outputs == [True, False]
    assert higherhrnet.heatmap_outputs_for_test == [True, True]
    assert higherhrnet.tag_outputs_for_test == [True, False]
    assert higherhrnet.output_resolution_index == [0, 1]
    assert higherhrnet.input_normalization == "imagenet"
    assert higherhrnet.head_prefixes == ("higherhrnet_head/",)


def test_any_multiple_of_the_divisor_when_size_is_free():
    backbone = HourglassBackbone(**TINY_AE)
    model = BottomUpPoseEstimator(backbone, input_normalization="unit")
    assert _shapes(model(_x((64, 192, 3), 1))) == [(1, 16, 48, 68)] * 2
    with pytest.raises(ValueError, match="multiple of 64"):
        model(_x((96, 64, 3), 1))


def test_hourglass_increase_quirk():
    # Officially only the outer level uses `increase`; inner levels add 128.
    official = HourglassModule(4, 16, increase=8)
    widths = [official.low1.filters]
    level = official.low2
    while isinstance(level, HourglassModule):
        widths.append(level.low1.filters)
        level = level.low2
    assert widths == [24, 152, 280, 408]
    assert level.filters == 408  # the innermost conv
    fixture = HourglassModule(4, 16, increase=8, inner_increase=8)
    assert fixture.low2.low2.low2.low1.filters == 48


def test_hourglass_bn_switch_follows_the_official_placement():
    backbone = HourglassBackbone(**TINY_AE, use_bn=True, image_shape=AE_SHAPE)
    with_bn = {
        v.path.rsplit("/", 2)[0]
        for v in backbone.weights
        if v.path.endswith("/bn/gamma")
    }
    assert {"pre0", "pre4", "stack0_hourglass/up1"} <= with_bn
    assert "stack0_hourglass/low2/low2/low2/low2" in with_bn  # innermost
    # Never BN: low3, the post-hourglass convs, outputs and merges.
    assert not any("low3" in p for p in with_bn)
    assert not any(
        p.startswith(("stack0_conv", "stack0_output", "stack0_merge"))
        for p in with_bn
    )


class BottomUpLayersTest(TestCase):
    def test_conv_act_bn(self):
        self.run_layer_test(
            ConvActBN,
            {"filters": 4, "kernel_size": 7, "strides": 2, "use_bn": True},
            _x((8, 6, 3)),
            expected_output_shape=(2, 4, 3, 4),
            expected_num_trainable_weights=4,
            expected_num_non_trainable_weights=2,
            run_training_check=False,
        )

    def test_hourglass_module(self):
        self.run_layer_test(
            HourglassModule,
            {"depth": 2, "filters": 4, "increase": 2, "inner_increase": 1},
            _x((8, 4, 4)),
            expected_output_shape=(2, 8, 4, 4),
            # up1, low1, low3 and the inner up1, low1, low2, low3: 7 convs.
            expected_num_trainable_weights=14,
            run_training_check=False,
        )

    def test_higherhrnet_head(self):
        self.run_layer_test(
            HigherHRNetHead,
            {"num_keypoints": 3, "deconv_channels": 4, "num_basic_blocks": 1},
            _x((4, 6, 5)),
            expected_output_shape=[(2, 4, 6, 6), (2, 8, 12, 3)],
            run_training_check=False,
        )

    def test_serialization(self):
        backbone = HourglassBackbone(**TINY_AE, image_shape=AE_SHAPE)
        self.run_serialization_test(backbone)
        self.run_serialization_test(
            HigherHRNetHead(num_keypoints=5, tag_per_joint=False)
        )

    def test_estimator_serialization(self):
        model = zoo.load("test_higherhrnet", compile=False)
        revived = self.run_serialization_test(model)
        assert revived.head.num_keypoints == 17
        assert revived.input_normalization == "imagenet"


@pytest.mark.parametrize("name", ["test_hourglass_ae", "test_higherhrnet"])
def test_keras_file_round_trip(name, hourglass, higherhrnet):
    model = hourglass if name == "test_hourglass_ae" else higherhrnet
    x = _x(model.input_shape[1:], 1)
    expected = [to_numpy(o) for o in model(x, training=False)]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        revived = keras.models.load_model(path, compile=False)
    assert type(revived) is BottomUpPoseEstimator
    assert revived.output_strides == model.output_strides
    for got, want in zip(revived(x, training=False), expected):
        np.testing.assert_allclose(to_numpy(got), want, atol=1e-5)


def test_num_keypoints_rebuilds_the_parts(higherhrnet):
    # The built backbone is shared: only the head is new.
    model = BottomUpPoseEstimator(
        higherhrnet.backbone,
        HigherHRNetHead(deconv_channels=8),
        num_keypoints=14,
    )
    assert _shapes(model.outputs) == [(None, 32, 24, 28), (None, 64, 48, 14)]
    assert model.head.num_keypoints == 14
    narrow = HourglassBackbone(**TINY_AE, output_channels=20)
    model = BottomUpPoseEstimator(narrow, num_keypoints=14)
    assert model.backbone.output_channels == 28
    assert model.tag_channels == 14


def test_bad_configs_say_what_to_do(hourglass, higherhrnet):
    with pytest.raises(ValueError, match="multiples of 64"):
        HourglassBackbone(**TINY_AE, image_shape=(96, 64, 3))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        HourglassBackbone(**TINY_AE, image_shape=(128, 64, 1))
    with pytest.raises(ValueError, match="num_stacks"):
        HourglassBackbone(num_stacks=0)
    with pytest.raises(ValueError, match="inp_dim"):
        HourglassBackbone(inp_dim=True)
    with pytest.raises(ValueError, match="odd"):
        ConvActBN(4, 2)
    with pytest.raises(ValueError, match="16 input channels"):
        HourglassModule(1, 16)(keras.Input((8, 8, 4)))
    with pytest.raises(ValueError, match="multiples of 4"):
        HourglassModule(2, 4)(keras.Input((6, 8, 4)))
    with pytest.raises(ValueError, match="final_kernel_size"):
        HigherHRNetHead(final_kernel_size=2)
    backbone = hourglass.backbone
    with pytest.raises(ValueError, match="head=None"):
        BottomUpPoseEstimator(backbone, HigherHRNetHead())
    with pytest.raises(ValueError, match="input_normalization"):
        BottomUpPoseEstimator(backbone, input_normalization="bgr")
    with pytest.raises(ValueError, match="num_keypoints"):
        BottomUpPoseEstimator(backbone, num_keypoints=0)
    with pytest.raises(ValueError, match="HigherHRNetHead"):
        BottomUpPoseEstimator(higherhrnet.backbone)


def test_normalize_images(hourglass, higherhrnet):
    pixels = np.array([[[[0, 128, 255]]]], "uint8")
    np.testing.assert_allclose(
        to_numpy(hourglass.normalize_images(pixels)),
        [[[[0.0, 128 / 255, 1.0]]]],
        atol=1e-6,
    )
    expected = (np.array([0, 128, 255]) / 255 - [0.485, 0.456, 0.406]) / [
        0.229,
        0.224,
        0.225,
    ]
    np.testing.assert_allclose(
        to_numpy(higherhrnet.normalize_images(pixels))[0, 0, 0],
        expected,
        atol=1e-5,
    )


def test_fit_delegates_to_the_loss():
    model = zoo.load("test_hourglass_ae", compile=False)
    with pytest.raises(ValueError, match="loss"):
        model.compute_loss(y_pred=model.outputs)
    seen = []

    def loss(targets, outputs):
        seen.append((sorted(targets), len(outputs)))
        heatmaps = outputs[-1][..., :17]
        return keras.ops.mean(
            keras.ops.square(heatmaps - targets["heatmaps_0"])
        )

    model.compile(loss=loss, run_eagerly=keras.backend.backend() != "jax")
    x = _x(AE_SHAPE, 1)
    y = {
        "heatmaps_0": np.zeros((1, 32, 16, 17), "float32"),
        "masks_0": np.ones((1, 32, 16), "float32"),
    }
    before = to_numpy(model.backbone.weights[0]).copy()
    history = model.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert seen[-1] == (["heatmaps_0", "masks_0"], 2)
    after = to_numpy(model.backbone.weights[0])
    assert not np.array_equal(before, after)


def test_auto_loss_is_the_official_recipe(hourglass, higherhrnet):
    pytest.importorskip("kerapose.losses.bottom_up_loss")
    ae = hourglass.default_loss()
    assert ae.output_resolution_index == [0, 0]
    assert ae.output_reduction == "mean"
    hhr = higherhrnet.default_loss()
    assert hhr.tag_outputs == [True, False]
    assert hhr.output_reduction == "sum"


# Official figures: shared/reference/README.md section 6 (conv + deconv
# MACs, a transposed conv counted per input element).
@pytest.mark.large
@pytest.mark.parametrize(
    "name, size, params, gmacs",
    [
        ("hourglass_ae", 512, 138_893_840, 222.210),
        ("higherhrnet_w32", 512, 28_645_331, 46.203),
        ("higherhrnet_w48", 640, 63_827_139, 149.469),
    ],
)
def test_full_size_matches_official_counts(name, size, params, gmacs):
    model = zoo.load(name, input_shape=(size, size, 3), compile=False)
    assert count_params(model) == params
    assert round(count_macs(model) / 1e9, 3) == gmacs
    keras.backend.clear_session()
