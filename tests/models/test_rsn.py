import keras
import numpy as np
import pytest

from kerapose import zoo
from kerapose.codecs import MultiSigmaHeatmap
from kerapose.models import RSNBackbone
from kerapose.models import RSNPoseEstimator
from kerapose.testing.test_case import TestCase
from kerapose.testing.test_case import to_numpy
from kerapose.utils import count_macs
from kerapose.utils import count_params

TINY = {
    "stage_blocks": (1, 1, 1, 1),
    "num_stages": 2,
    "layer_channels": (8, 16, 32, 64),
    "stem_channels": 8,
    "upsample_channels": 16,
    "use_prm": True,
    "image_shape": (64, 64, 3),
}


def _x(batch=2, shape=(64, 64, 3), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, *shape)).astype("float32")


class RSNBackboneTest(TestCase):
    def test_backbone_basics(self):
        self.run_backbone_test(
            RSNBackbone,
            TINY,
            _x(),
            # 2 stages x 4 units, each (16, 16) heatmaps of 17 keypoints.
            expected_output_shape=(2, 8, 16, 16, 17),
            expected_pyramid_shapes={
                "P2": (16, 16),
                "P3": (8, 8),
                "P4": (4, 4),
                "P5": (2, 2),
            },
        )

    def test_non_square_input(self):
        backbone = RSNBackbone(**{**TINY, "image_shape": (96, 64, 3)})
        y = backbone(_x(1, (96, 64, 3)))
        assert tuple(y.shape) == (1, 8, 24, 16, 17)

    def test_layer_names_follow_the_official_structure(self):
        backbone = RSNBackbone(**{**TINY, "num_stages": 1, "use_prm": False})
        names = [layer.name for layer in backbone.layers[1:]]
        assert names[:4] == [
            "stem_conv",
            "stem_pool_pad",
            "stem_pool",
            "stage0_layer1_block0",
        ]
        for u in range(1, 5):
            assert f"stage0_up{u}_lateral" in names
            assert f"stage0_up{u}_heatmap" in names
        assert "stage0_up1_top_down" not in names  # the coarsest has none
        assert "stage0_up2_top_down" in names
        # Only stages that feed another stage have skips and a cross conv.
        assert not any("skip" in n or "cross" in n for n in names)
        two = RSNBackbone(**TINY)
        names = {layer.name for layer in two.layers}
        assert {"stage0_up4_skip1", "stage0_cross_conv", "prm"} <= names
        assert "stage1_up4_skip1" not in names

    def test_cross_stage_skips_reach_the_next_encoder(self):
        # Zeroing stage 0's skip convs changes stage 1's output.
        backbone = RSNBackbone(**TINY)
        x = _x(1)
        rng = np.random.default_rng(1)
        for v in backbone.trainable_weights:
            v.assign(rng.normal(size=v.shape).astype("float32") * 0.3)
        before = to_numpy(backbone(x, training=False))
        layer = backbone.get_layer("stage0_up2_skip2")
        layer.conv.kernel.assign(np.zeros(layer.conv.kernel.shape))
        layer.conv.bias.assign(np.zeros(layer.conv.bias.shape))
        layer.bn.beta.assign(np.zeros(layer.bn.beta.shape))
        after = to_numpy(backbone(x, training=False))
        np.testing.assert_array_equal(after[:, :4], before[:, :4])
        assert np.abs(after[:, 4:] - before[:, 4:]).max() > 1e-3

    def test_saving(self):
        self.run_model_saving_test(RSNBackbone(**TINY), _x())

    def test_bad_config(self):
        with self.assertRaisesRegex(ValueError, "4 positive ints"):
            RSNBackbone(stage_blocks=(2, 2, 2))
        with self.assertRaisesRegex(ValueError, "multiples of 32"):
            RSNBackbone(**{**TINY, "image_shape": (100, 64, 3)})
        with self.assertRaisesRegex(ValueError, "static H and W"):
            RSNBackbone(**{**TINY, "image_shape": (None, None, 3)})
        with self.assertRaisesRegex(ValueError, r"\(H, W, 3\)"):
            RSNBackbone(**{**TINY, "image_shape": (64, 64, 1)})
        with self.assertRaisesRegex(ValueError, "num_stages"):
            RSNBackbone(**{**TINY, "num_stages": 0})


class RSNBadInputTest(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = zoo.load("test_rsn")

    def test_wrong_rank_or_type(self):
        with self.assertRaisesRegex(ValueError, r"rank-4.*images\[None\]"):
            self.model(_x()[0])
        with self.assertRaisesRegex(TypeError, "image batch"):
            self.model([[1.0, 2.0]])

    def test_bad_num_keypoints(self):
        for bad in (0, -1, 2.5, True, "17"):
            with self.assertRaisesRegex(ValueError, "positive int"):
                RSNPoseEstimator(self.model.backbone, num_keypoints=bad)

    def test_wrong_channels(self):
        with self.assertRaisesRegex(ValueError, "3-channel"):
            self.model(_x(1, (64, 64, 1)))

    def test_wrong_dtype(self):
        images = np.zeros((1, 64, 64, 3), "uint8")
        with self.assertRaisesRegex(TypeError, "float images"):
            self.model(images)

    def test_wrong_size(self):
        with self.assertRaisesRegex(ValueError, "built for 64x64"):
            self.model(_x(1, (96, 64, 3)))
        with self.assertRaisesRegex(ValueError, "multiple of 32"):
            self.model(_x(1, (70, 64, 3)))


class RSNPoseEstimatorTest(TestCase):
    def test_estimator_fit_and_predict(self):
        model = RSNPoseEstimator(RSNBackbone(**TINY))
        x = _x(2)
        targets = np.random.default_rng(1).uniform(size=(2, 16, 16, 17))
        weights = np.ones((2, 17), "float32")
        out = self.run_estimator_test(
            model, x, targets.astype("float32"), weights
        )
        # predict decodes the last unit (PRM output of the last stage).
        final = to_numpy(model(x, training=False))[:, -1]
        np.testing.assert_allclose(out["heatmaps"], final, atol=1e-5)

    def test_serialization_and_saving(self):
        model = RSNPoseEstimator(RSNBackbone(**TINY))
        self.run_serialization_test(model)
        self.run_model_saving_test(model, _x(1))

    def test_num_keypoints_rebuilds_the_heatmap_layers(self):
        model = RSNPoseEstimator(RSNBackbone(**TINY), num_keypoints=16)
        assert model.num_keypoints == model.backbone.num_keypoints == 16
        assert tuple(model(_x(1)).shape) == (1, 8, 16, 16, 16)
        heads = [
            v.path
            for v in model.weights
            if v.path.startswith(model.head_prefixes)
        ]
        # 8 heatmap convs (4 weights + 2 BN stats) + PRM (30 tensors).
        assert len(heads) == 8 * 6 + 30

    def test_zoo_override_of_keypoints_and_input(self):
        model = zoo.load("test_rsn", num_keypoints=16, input_shape=(96, 64, 3))
        out = model.predict(_x(1, (96, 64, 3)), verbose=0)
        assert out["heatmaps"].shape == (1, 24, 16, 16)
        assert model.codec.heatmap_size == (24, 16)


def test_multi_sigma_codec():
    codec = MultiSigmaHeatmap((64, 48), (16, 12))
    np.testing.assert_allclose(codec.sigmas, (2.6, 2.0, 1.7, 1.4, 1.1))
    assert codec.sigma == 1.1
    maps, weights = codec.encode(np.array([[20.0, 30.0]]), np.ones(1))
    assert maps.shape == (5, 16, 12, 1) and weights.tolist() == [1.0]
    # Same peak, wider Gaussians first: mass decreases coarse to fine.
    assert np.allclose(maps.max(axis=(1, 2, 3)), 1.0)
    mass = maps.sum(axis=(1, 2, 3))
    assert np.all(np.diff(mass) < 0)
    revived = MultiSigmaHeatmap.from_config(codec.get_config())
    assert revived.sigmas == codec.sigmas
    with pytest.raises(ValueError, match="sigmas"):
        MultiSigmaHeatmap(sigmas=())


# Official figures: shared/reference/README.md section 6 (random weights,
# conv + linear MACs). PRM adds 5,100 parameters and 13.1 M MACs at 64x48.
@pytest.mark.large
@pytest.mark.parametrize(
    "name, params, gmacs",
    [
        ("rsn_18", 9_159_072, 2.245),
        ("rsn_50", 19_355_132, 4.068),
        ("rsn_18_x4", 38_456_256, 9.220),
        ("rsn_50_x4", 79_240_496 + 5_100, 16.523),  # 16.5095 + 0.0131
    ],
)
def test_full_size_matches_official_counts(name, params, gmacs):
    model = zoo.load(name, compile=False)
    assert count_params(model) == params
    assert round(count_macs(model) / 1e9, 3) == round(gmacs, 3)


@pytest.mark.large
def test_official_rsn50_file_variant_counts():
    # The RSN-50 network file from the official repository's history sets
    # the RSB expansion to 4 but keeps the inner-width rule on the block's
    # input width: 295M parameters, 48.5 GMACs at 256x192.
    backbone = RSNBackbone(stage_blocks=(3, 4, 6, 3), block_expansion=4)
    assert count_params(backbone) == 295_299_816
    assert round(count_macs(backbone) / 1e9, 3) == 48.542
    keras.backend.clear_session()


def test_trains_on_the_top_down_pipeline(tmp_path):
    # The pipeline encodes one target per sigma; fit supervises every unit
    # of both stages with them, on any backend.
    from kerapose.data.pipelines import build_top_down_dataset
    from kerapose.testing.fake_data import write_fake_coco

    ann = write_fake_coco(tmp_path, num_images=6, image_size=(48, 64))
    codec = MultiSigmaHeatmap((64, 64), (16, 16))
    ds = build_top_down_dataset(
        ann, tmp_path / "images", codec, batch_size=2, seed=0, verbose=False
    )
    images, heatmaps, weights = next(iter(ds))
    assert tuple(heatmaps.shape) == (2, 5, 16, 16, 17)
    assert tuple(weights.shape) == (2, 17)
    # Coarse to fine: each labelled keypoint's map gets narrower.
    mass = np.asarray(heatmaps).sum(axis=(2, 3))  # (2, 5, 17)
    labelled = np.asarray(weights) > 0
    assert np.all(np.diff(mass, axis=1)[:, :, labelled.any(0)] <= 1e-6)
    model = zoo.load("test_rsn")
    assert model.codec.get_config() == codec.get_config()
    # The family's loss; SGD because tracing Adam's update of every
    # variable costs a minute on 2 cores and proves nothing of ours.
    model.compile(optimizer="sgd")
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_mmpose_knobs_build_mmpose_rsn():
    # MMPose's RSN: any unit count, branch factor and no conv biases.
    backbone = RSNBackbone(
        stage_blocks=(1, 1, 1),
        num_stages=2,
        num_units=3,
        layer_channels=(16, 32, 64),
        stem_channels=16,
        upsample_channels=16,
        expand_times=6,
        conv_bias=False,
        image_shape=(64, 64, 3),
    )
    y = backbone(_x(1))
    assert tuple(y.shape) == (1, 6, 16, 16, 17)  # 2 stages x 3 units
    assert {
        k: tuple(v.shape[1:3]) for k, v in backbone.pyramid_outputs.items()
    } == {
        "P2": (16, 16),
        "P3": (8, 8),
        "P4": (4, 4),
    }
    assert not any(
        v.path.endswith("/bias") and "/conv/" in v.path
        for v in backbone.weights
    )
    # Branch width = in_channels * expand_times // 64: 32 * 6 // 64 = 3.
    block = backbone.get_layer("stage0_layer3_block0")
    assert block.branch_channels == 3
    assert block.get_config()["use_bias"] is False
    model = RSNPoseEstimator(backbone)
    assert model.units_per_stage == model.default_loss().units_per_stage == 3
    revived = RSNBackbone.from_config(backbone.get_config())
    assert revived.num_units == 3 and revived.conv_bias is False
    assert revived.expand_times == 6
    with pytest.raises(ValueError, match="3 positive ints"):
        RSNBackbone(stage_blocks=(1, 1, 1, 1), num_units=3)
    for bad in (0, 5, True, 2.0):
        with pytest.raises(ValueError, match="num_units"):
            RSNBackbone(num_units=bad, stage_blocks=(1,), layer_channels=(8,))
    with pytest.raises(ValueError, match="expand_times"):
        RSNBackbone(expand_times=0)


# MMPose's RSN is the official network less the conv biases (one per output
# channel of every conv before a BN): the official counts come from the
# official classes (shared/reference/README.md section 6) or, for the
# multi-stage RSN-50s, kerapose's `conv_bias=True` build.
@pytest.mark.large
@pytest.mark.parametrize(
    "name, official, params",
    [
        ("rsn_18_mmpose", 9_159_072, 9_144_936),
        ("rsn_50_x2_mmpose", 39_316_920, 39_261_904),
    ],
)
def test_mmpose_variants_are_official_counts_less_conv_biases(
    name, official, params
):
    model = zoo.load(name, compile=False)
    kernels = [v for v in model.weights if v.path.endswith("/conv/kernel")]
    biases = sum(int(v.shape[-1]) for v in kernels)
    assert count_params(model) == params == official - biases
    assert not any(v.path.endswith("/conv/bias") for v in model.weights)
    keras.backend.clear_session()
