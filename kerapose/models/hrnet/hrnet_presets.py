"""HRNet presets: architecture configs as data, weights by tag."""

_OFFICIAL = (
    "Official HRNet model zoo (leoxiaobin/deep-high-resolution-net.pytorch), "
    "MIT licence"
)


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


def _hrnet(width, ap_256, ap_384):
    name = f"hrnet_w{width}"
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
                "metrics": {"coco/AP": ap_256},
                "weights": {
                    "file": f"{name}_coco_256x192.weights.h5",
                    "official_checkpoint": f"pose_hrnet_w{width}_256x192.pth",
                    "source": _OFFICIAL,
                },
            },
            "coco_384x288": {
                "image_shape": [384, 288, 3],
                "metrics": {"coco/AP": ap_384},
                "weights": {
                    "file": f"{name}_coco_384x288.weights.h5",
                    "official_checkpoint": f"pose_hrnet_w{width}_384x288.pth",
                    "source": _OFFICIAL,
                },
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
