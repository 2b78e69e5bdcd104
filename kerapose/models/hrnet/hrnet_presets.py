"""HRNet presets: architecture configs as data, weights by tag."""

_OFFICIAL = (
    "Official HRNet model zoo (leoxiaobin/deep-high-resolution-net.pytorch), "
    "MIT licence"
)
_MMPOSE_URL = (
    "https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/"
    "topdown_heatmap/coco/"
)
_MMPOSE = "MMPose 1.x model zoo (open-mmlab/mmpose, configs/body_2d_keypoint)"
# MMPose 1.x COCO checkpoints: (width, input) -> (file stem, sha256 prefix
# and date, AP). The 8 hex digits in the file name are the first digits of
# its sha256 (MMPose's publish_model.py). AP: COCO val2017, person detector
# boxes (AP_H 56), flip test, from MMPose's model-zoo metadata (.yml); its
# README table gives 0.749 (W32 256x192) and 0.761 (W32 384x288).
_MMPOSE_CHECKPOINTS = {
    (32, "256x192"): ("td-hm_hrnet-w32_8xb64-210e", "81c58e40_20220909", 0.746),
    (32, "384x288"): ("td-hm_hrnet-w32_8xb64-210e", "ca5956af_20220909", 0.760),
    (48, "256x192"): ("td-hm_hrnet-w48_8xb32-210e", "0e67c616_20220913", 0.756),
    (48, "384x288"): ("td-hm_hrnet-w48_8xb32-210e", "c161b7de_20220915", 0.767),
}  # fmt: skip


def _estimator(widths, modules, blocks, image_shape, num_keypoints=17):
    h, w = image_shape[:2]
    return {
        "class_name": "kerapose>TopDownPoseEstimator",
        "config": {
            "backbone": {
                "class_name": "kerapose>HRNetBackbone",
                "config": {
                    "stage_channels": list(widths),
                    "stage_modules": list(modules),
                    "stage_blocks": blocks,
                    "image_shape": list(image_shape),
                },
            },
            "num_keypoints": num_keypoints,
            "codec": {
                "class_name": "kerapose>MSRAHeatmap",
                "config": {
                    "input_size": [h, w],
                    "heatmap_size": [h // 4, w // 4],
                    "sigma": 2.0,
                },
            },
        },
    }


def _small(config):
    config["config"]["backbone"]["config"].update(
        stage1_blocks=1, stage1_filters=32
    )
    return config


def _weights(width, size):
    """A tag's weights: the MMPose 1.x checkpoint to download and convert;
    the official checkpoint, if the user has it, converts to the same
    file."""
    stem, hash_date, ap = _MMPOSE_CHECKPOINTS[(width, size)]
    return {
        "file": f"hrnet_w{width}_coco_{size}.weights.h5",
        "url": f"{_MMPOSE_URL}{stem}_coco-{size}-{hash_date}.pth",
        "sha256_prefix": hash_date[:8],
        "layout": "mmpose-1.x",
        "source": _MMPOSE,
        "licence": "Apache-2.0",
        # What MMPose reports for this file; the tag's own `metrics` are
        # the paper's figures for the official checkpoint.
        "metrics": {"coco/AP": ap},
        "official_checkpoint": f"pose_hrnet_w{width}_{size}.pth",
        "official_source": _OFFICIAL,
    }


def _hrnet(width, ap_256, ap_384):
    widths = (width, 2 * width, 4 * width, 8 * width)
    return {
        "metadata": {
            "family": "hrnet",
            "description": (
                f"HRNet-W{width} top-down pose estimator (COCO 17 keypoints)."
            ),
            "paper": "https://arxiv.org/abs/1902.09212",
        },
        "config": _estimator(widths, (1, 4, 3), 4, (256, 192, 3)),
        "tags": {
            "coco_256x192": {
                "image_shape": [256, 192, 3],
                # The paper's AP (official checkpoint).
                "metrics": {"coco/AP": ap_256},
                "weights": _weights(width, "256x192"),
            },
            "coco_384x288": {
                "image_shape": [384, 288, 3],
                "metrics": {"coco/AP": ap_384},
                "weights": _weights(width, "384x288"),
            },
        },
    }


presets = {
    # AP: COCO val2017 with the official person detector and flip test,
    # as published in the official README.
    "hrnet_w32": _hrnet(32, 0.744, 0.758),
    "hrnet_w48": _hrnet(48, 0.751, 0.763),
    # HRNet-W18-Small-v1, the official HRNet image-classification repo's
    # small configuration (stage 1: one bottleneck of width 32; stages 2-4:
    # one module of two basic blocks per branch, widths 16-128) with the
    # pose heatmap head. No official pose weights; for CPU training and
    # demos.
    "hrnet_w18_small": {
        "metadata": {
            "family": "hrnet",
            "description": (
                "HRNet-W18-Small-v1 top-down pose estimator (COCO 17 "
                "keypoints); small and fast, no official pose weights."
            ),
            "paper": "https://arxiv.org/abs/1908.07919",
        },
        "config": _small(
            _estimator((16, 32, 64, 128), (1, 1, 1), 2, (256, 192, 3))
        ),
        "tags": {},
    },
    # Tiny configuration for tests: the structure of the official network
    # (stem, stage 1, stages 2-4) at small widths.
    "test_hrnet": {
        "metadata": {
            "family": "hrnet",
            "description": "Tiny HRNet for tests and demos (widths 8-64).",
            "paper": "https://arxiv.org/abs/1902.09212",
        },
        "config": _estimator((8, 16, 32, 64), (1, 1, 1), 1, (64, 64, 3)),
        "tags": {},
    },
}
