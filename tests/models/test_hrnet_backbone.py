import numpy as np
import pytest

from kerapose.models import HRNetBackbone
from kerapose.testing.test_case import TestCase

TINY = {
    "stage_channels": (8, 16, 32, 64),
    "stage_modules": (1, 1, 1),
    "stage_blocks": 1,
    "image_shape": (64, 64, 3),
}


class HRNetBackboneTest(TestCase):
    def setUp(self):
        self.input_data = (
            np.random.default_rng(0)
            .normal(size=(2, 64, 64, 3))
            .astype("float32")
        )

    def test_backbone_basics(self):
        self.run_backbone_test(
            HRNetBackbone,
            TINY,
            self.input_data,
            expected_output_shape=(2, 16, 16, 8),
            expected_pyramid_shapes={"P2": (16, 16)},
        )

    def test_multi_scale_output(self):
        self.run_backbone_test(
            HRNetBackbone,
            {**TINY, "multi_scale_output": True},
            self.input_data,
            expected_output_shape=(2, 16, 16, 8),
            expected_pyramid_shapes={
                "P2": (16, 16),
                "P3": (8, 8),
                "P4": (4, 4),
                "P5": (2, 2),
            },
        )

    def test_dynamic_input_size(self):
        backbone = HRNetBackbone(**{**TINY, "image_shape": (None, None, 3)})
        x = np.zeros((1, 96, 64, 3), "float32")
        assert tuple(backbone(x).shape) == (1, 24, 16, 8)

    def test_layer_names_follow_the_official_structure(self):
        backbone = HRNetBackbone(**TINY)
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
        ]

    def test_saving(self):
        self.run_model_saving_test(HRNetBackbone(**TINY), self.input_data)

    def test_bad_config(self):
        with self.assertRaisesRegex(ValueError, "4 positive ints"):
            HRNetBackbone(stage_channels=(8, 16, 32))
        with self.assertRaisesRegex(ValueError, "multiples of 32"):
            HRNetBackbone(**{**TINY, "image_shape": (100, 64, 3)})
        with self.assertRaisesRegex(ValueError, r"\(H, W, 3\)"):
            HRNetBackbone(**{**TINY, "image_shape": (64, 64, 1)})


@pytest.mark.large
@pytest.mark.parametrize(
    "widths, expected",
    [((32, 64, 128, 256), 28_535_552), ((48, 96, 192, 384), 63_594_912)],
)
def test_full_size_backbone_params(widths, expected):
    # Official totals (28,536,113 / 63,595,745) minus the 17-joint head.
    from kerapose.utils import count_params

    backbone = HRNetBackbone(stage_channels=widths)
    assert count_params(backbone) == expected


def test_w18_small_preset_is_the_official_small_v1_config():
    # HRNet-W18-Small-v1 (official image-classification config): stage 1
    # one bottleneck of width 32, then one module per stage of two basic
    # blocks per branch, widths 16/32/64/128.
    from kerapose import zoo

    model = zoo.load("hrnet_w18_small", input_shape=(64, 64, 3))
    backbone = model.backbone
    names = {layer.name for layer in backbone.layers}
    assert "stage1_block0" in names and "stage1_block1" not in names
    assert {"stage2_module0", "stage3_module0", "stage4_module0"} <= names
    assert not {"stage3_module1", "stage4_module1"} & names
    assert backbone.get_layer("stage1_block0").output.shape[-1] == 128
    widths = [t.shape[-1] for t in backbone.get_layer("transition3").output]
    assert widths == [16, 32, 64, 128]
    config = backbone.get_config()
    assert config["stage_blocks"] == 2
