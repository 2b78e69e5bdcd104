import re

import keras
import numpy as np
import pytest

from kerapose import zoo
from kerapose.codecs import MSRAHeatmap
from kerapose.data.pipelines import build_top_down_dataset
from kerapose.data.synthetic import write_synthetic_coco
from kerapose.data.transforms import AugmentConfig
from kerapose.eval.top_down import evaluate_top_down
from kerapose.models import HRNetBackbone
from kerapose.models import OmniPoseBackbone
from kerapose.models import TopDownPoseEstimator
from kerapose.testing.test_case import TestCase
from kerapose.testing.test_case import to_numpy
from tests.models.test_top_down_estimator import training_batch

TINY = {
    "stage_channels": (8, 16, 32, 64),
    "stage_modules": (1, 1, 1),
    "stage_blocks": 1,
    "image_shape": (64, 64, 3),
}
PYRAMID = {"P2": (16, 16), "P3": (8, 8), "P4": (4, 4), "P5": (2, 2)}


class OmniPoseBackboneTest(TestCase):
    def setUp(self):
        self.input_data = (
            np.random.default_rng(0)
            .normal(size=(2, 64, 64, 3))
            .astype("float32")
        )

    def test_backbone_basics(self):
        backbone = self.run_backbone_test(
            OmniPoseBackbone,
            TINY,
            self.input_data,
            expected_output_shape=(2, 16, 16, 8),
            expected_pyramid_shapes=PYRAMID,
        )
        assert isinstance(backbone, HRNetBackbone)
        assert "multi_scale_output" not in backbone.get_config()

    def test_lite_backbone_basics(self):
        backbone = self.run_backbone_test(
            OmniPoseBackbone,
            {**TINY, "separable": True},
            self.input_data,
            expected_output_shape=(2, 16, 16, 8),
            expected_pyramid_shapes=PYRAMID,
        )
        assert backbone.get_config()["separable"] is True

    def test_layer_names_are_hrnet_plus_waspv2(self):
        backbone = OmniPoseBackbone(**TINY)
        names = [layer.name for layer in backbone.layers[1:]]
        assert names == [
            "stem_conv1",
            "stem_conv2",
            "stage1_block0",
            "stage1_block1",
            "stage1_block2",
            "stage1_block3",
            "transition1",
            "stage2_module0",
            "transition2",
            "stage3_module0",
            "transition3",
            "stage4_module0",
            "waspv2",
        ]
        # Stage 4 fuses all four outputs, with a Gaussian on each up path.
        paths = {v.path for v in backbone.weights}
        assert "stage4_module0/fuse/fuse3_0_down2/conv/kernel" in paths
        assert "stage4_module0/fuse/fuse0_3_up/gaussian/kernel" in paths
        assert "stage4_module0/fuse/fuse2_3_up/deconv0/kernel" in paths

    def test_lite_convs_are_separable_except_in_waspv2_and_upsampling(self):
        backbone = OmniPoseBackbone(**TINY, separable=True)
        plain = sorted(
            v.path for v in backbone.weights if v.path.endswith("/conv/kernel")
        )
        assert plain == [
            "waspv2/decode1/conv/kernel",
            "waspv2/decode2/conv/kernel",
            "waspv2/fuse/conv/kernel",
            "waspv2/low_level/conv/kernel",
            "waspv2/pool/conv/kernel",
        ]

    def test_saving(self):
        self.run_model_saving_test(
            OmniPoseBackbone(**TINY, separable=True), self.input_data
        )

    def test_bad_config(self):
        with self.assertRaisesRegex(ValueError, "4 positive ints"):
            OmniPoseBackbone(stage_channels=(8, 16, 32))
        with self.assertRaisesRegex(ValueError, "multiples of 32"):
            OmniPoseBackbone(**{**TINY, "image_shape": (100, 64, 3)})
        with self.assertRaisesRegex(ValueError, "at least 8"):
            OmniPoseBackbone(**{**TINY, "stage_channels": (4, 8, 16, 32)})

    def test_bad_inputs_get_clear_errors(self):
        backbone = OmniPoseBackbone(**{**TINY, "image_shape": (None, None, 3)})
        model = TopDownPoseEstimator(OmniPoseBackbone(**TINY))
        for net in (backbone, model):
            with self.assertRaisesRegex(ValueError, "rank-4"):
                net(np.zeros((64, 64, 3), "float32"))
            with self.assertRaisesRegex(ValueError, "3-channel"):
                net(np.zeros((1, 64, 64, 1), "float32"))
            with self.assertRaisesRegex(TypeError, "float images"):
                net(np.zeros((1, 64, 64, 3), "uint8"))
        with self.assertRaisesRegex(ValueError, "multiple of 32"):
            backbone(np.zeros((1, 80, 64, 3), "float32"))


class OmniPoseEstimatorTest(TestCase):
    def test_one_step_trains_everything_that_reaches_the_output(self):
        # `run_estimator_test` demands a gradient for every variable, but
        # OmniPose's last module fuses all four branches (official
        # structure, weights in the checkpoint) and only branch 0 feeds
        # WASPv2: the fuse paths into branches 1-3 get no gradient.
        model = zoo.load("test_omnipose_lite", compile=False)
        assert isinstance(model.backbone, OmniPoseBackbone)
        assert model.codec.refinement == "dark"
        images, heatmaps, weights = training_batch(model.codec)
        # Eager on TF, as in `run_estimator_test`: the traced fit is
        # test_fits_on_the_synthetic_pipeline_and_predicts.
        model.compile(run_eagerly=keras.backend.backend() == "tensorflow")
        before = [to_numpy(v).copy() for v in model.trainable_weights]
        history = model.fit(
            images,
            heatmaps,
            sample_weight=weights,
            batch_size=len(images),
            verbose=0,
        )
        assert np.isfinite(history.history["loss"][0])
        unchanged = [
            v.path
            for b, v in zip(before, model.trainable_weights)
            if np.array_equal(b, to_numpy(v))
        ]
        dead = re.compile(r"stage4_module0/fuse/fuse[123]_\d")
        assert unchanged and all(dead.match(p) for p in unchanged)
        out = model.predict(images, verbose=0)
        assert out["keypoints"].shape == (2, 17, 2)
        assert out["scores"].shape == (2, 17)

    def test_serialization(self):
        model = zoo.load("test_omnipose", num_keypoints=5, compile=False)
        revived = self.run_serialization_test(model)
        assert isinstance(revived.backbone, OmniPoseBackbone)
        assert isinstance(revived.codec, MSRAHeatmap)
        assert revived.output_shape == (None, 16, 16, 5)


def test_fits_on_the_synthetic_pipeline_and_predicts(tmp_path):
    keras.utils.set_random_seed(0)
    ann = write_synthetic_coco(
        tmp_path, 4, image_size=(96, 96), seed=0, split="train"
    )
    model = zoo.load("test_omnipose")
    no_augmentation = AugmentConfig(
        scale_factor=0.0, rotation_prob=0.0, flip_prob=0.0, half_body_prob=0.0
    )
    dataset = build_top_down_dataset(
        ann,
        tmp_path / "images",
        model.codec,
        batch_size=2,
        seed=0,
        augment_config=no_augmentation,
        verbose=False,
    )
    # The family's loss; SGD because tracing Adam's update of every
    # variable costs a minute on 2 cores and proves nothing of ours.
    model.compile(optimizer="sgd")
    history = model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    metrics = evaluate_top_down(model, ann, tmp_path / "images", flip_test=True)
    assert 0.0 <= metrics["AP"] <= 1.0
    out = model.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0)
    assert out["keypoints"].shape == (1, 17, 2)
    assert np.all(np.isfinite(out["keypoints"]))


@pytest.mark.large
@pytest.mark.parametrize(
    "separable, total, trainable",
    # Official figures (reference README section 6); the difference is the
    # frozen Gaussian filters.
    [(False, 68_141_357, 68_119_757), (True, 11_128_984, 11_107_384)],
)
def test_full_size_params_equal_the_official_model(separable, total, trainable):
    from kerapose.utils import count_params

    backbone = OmniPoseBackbone(separable=separable)
    model = TopDownPoseEstimator(backbone)
    assert count_params(model) == total
    counted = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert counted == trainable
