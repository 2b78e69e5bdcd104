"""OmniPose presets: architecture configs as data, weights by tag."""

_PAPER = "https://arxiv.org/abs/2103.10180"
_OFFICIAL = (
    "Official OmniPose repository (bmartacho/OmniPose), weights linked "
    "from its README"
)
W48 = (48, 96, 192, 384)
TINY = (8, 16, 32, 64)


def _estimator(widths, modules, blocks, image_shape, separable):
    h, w = image_shape[:2]
    return {
        "class_name": "kerapose>TopDownPoseEstimator",
        "config": {
            "backbone": {
                "class_name": "kerapose>OmniPoseBackbone",
                "config": {
                    "stage_channels": list(widths),
                    "stage_modules": list(modules),
                    "stage_blocks": blocks,
                    "separable": separable,
                    "image_shape": list(image_shape),
                },
            },
            "num_keypoints": 17,
            # The official configs: Gaussian targets of sigma 3 at both
            # input sizes, DARK post-processing (BLUR_KERNEL 11) at test.
            "codec": {
                "class_name": "kerapose>MSRAHeatmap",
                "config": {
                    "input_size": [h, w],
                    "heatmap_size": [h // 4, w // 4],
                    "sigma": 3.0,
                    "refinement": "dark",
                },
            },
        },
    }


def _tag(name, image_shape, checkpoint):
    h, w = image_shape[:2]
    return {
        "image_shape": list(image_shape),
        # No COCO AP is recorded for these models in the sources this
        # project relies on (the official README publishes none).
        "metrics": {},
        "weights": {
            "file": f"{name}_coco_{h}x{w}.weights.h5",
            "official_checkpoint": checkpoint,
            "source": _OFFICIAL,
        },
    }


def _metadata(description):
    return {"family": "omnipose", "description": description, "paper": _PAPER}


presets = {
    "omnipose": {
        "metadata": _metadata(
            "OmniPose (HRNet-W48 backbone, Gaussian heatmap modulation, "
            "WASPv2) top-down pose estimator (COCO 17 keypoints)."
        ),
        "config": _estimator(W48, (1, 4, 3), 4, (256, 192, 3), False),
        "tags": {
            # Checkpoint paths as the official experiment configs name them.
            "coco_256x192": _tag(
                "omnipose",
                (256, 192, 3),
                "OmniPose_w48_v2_256/model_best.pth",
            ),
            "coco_384x288": _tag(
                "omnipose", (384, 288, 3), "OmniPose_w48_v2/model_best.pth"
            ),
        },
    },
    "omnipose_lite": {
        "metadata": _metadata(
            "OmniPose-Lite: OmniPose with separable convs throughout the "
            "backbone, as the official code's switch builds it."
        ),
        "config": _estimator(W48, (1, 4, 3), 4, (256, 192, 3), True),
        # The official repository ships no Lite checkpoint.
        "tags": {
            "coco_256x192": {
                "image_shape": [256, 192, 3],
                "metrics": {},
            },
        },
    },
    # Tiny configurations for tests: the official structure at small widths
    # (that of the reference fixtures, at a 64x64 input).
    "test_omnipose": {
        "metadata": _metadata("Tiny OmniPose for tests (widths 8-64)."),
        "config": _estimator(TINY, (1, 1, 1), 1, (64, 64, 3), False),
        "tags": {},
    },
    "test_omnipose_lite": {
        "metadata": _metadata("Tiny OmniPose-Lite for tests (widths 8-64)."),
        "config": _estimator(TINY, (1, 1, 1), 1, (64, 64, 3), True),
        "tags": {},
    },
}
