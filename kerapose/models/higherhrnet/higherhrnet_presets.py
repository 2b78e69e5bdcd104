"""HigherHRNet presets: architecture configs as data, weights by tag."""

_OFFICIAL = (
    "Official HigherHRNet model zoo "
    "(HRNet/HigherHRNet-Human-Pose-Estimation), MIT licence"
)
_PAPER = "https://arxiv.org/abs/1908.10357"
_MMPOSE = (
    "MMPose 0.x model zoo (open-mmlab/mmpose v0.29.0, "
    "configs/body/2d_kpt_sview_rgb_img/associative_embedding/coco/)"
)
_MMPOSE_URL = "https://download.openmmlab.com/mmpose/bottom_up/"


def _estimator(width, modules, blocks, image_shape, num_keypoints=17):
    return {
        "class_name": "kerapose>BottomUpPoseEstimator",
        "config": {
            "backbone": {
                "class_name": "kerapose>HRNetBackbone",
                "config": {
                    "stage_channels": [width, 2 * width, 4 * width, 8 * width],
                    "stage_modules": list(modules),
                    "stage_blocks": blocks,
                    "image_shape": list(image_shape),
                },
            },
            "head": {
                "class_name": "kerapose>HigherHRNetHead",
                "config": {
                    "name": "higherhrnet_head",
                    "num_keypoints": num_keypoints,
                    # The official configs widen the stride-2 branch like
                    # HRNet's first branch.
                    "deconv_channels": width,
                    "num_basic_blocks": 4,
                },
            },
            "num_keypoints": num_keypoints,
            # torchvision ToTensor + Normalize(ImageNet mean, std) on RGB.
            "input_normalization": "imagenet",
        },
    }


def _tag(width, size, ap):
    return {
        "image_shape": [size, size, 3],
        "metrics": {"coco/AP": ap},
        "weights": {
            "file": f"higherhrnet_w{width}_coco_{size}.weights.h5",
            "official_checkpoint": f"pose_higher_hrnet_w{width}_{size}.pth",
            "source": _OFFICIAL,
        },
    }


def _mmpose_tag(width, size, file, ap, ap_multi_scale):
    """An MMPose 0.x checkpoint: the official network under the module
    prefixes `backbone.` and `keypoint_head.`, renamed when converted.
    AP: MMPose's COCO val2017 figures, single scale and multi-scale
    (scales 2, 1, 0.5)."""
    metrics = {"coco/AP": ap, "coco/AP_multi_scale": ap_multi_scale}
    return {
        "image_shape": [size, size, 3],
        "metrics": metrics,
        "weights": {
            "file": f"higherhrnet_w{width}_mmpose_coco_{size}.weights.h5",
            "url": _MMPOSE_URL + file,
            # The 8 hex digits in the file name (MMPose's publish_model.py).
            "sha256_prefix": file.rsplit("-", 1)[1][:8],
            "layout": "mmpose-0.x",
            "source": _MMPOSE,
            "licence": "Apache-2.0",
            "metrics": dict(metrics),
        },
    }


def _higherhrnet(width, tags):
    return {
        "metadata": {
            "family": "higherhrnet",
            "description": (
                f"HigherHRNet-W{width} bottom-up pose estimator (COCO 17 "
                "keypoints): heatmaps and tags at 1/4, heatmaps at 1/2."
            ),
            "paper": _PAPER,
        },
        "config": _estimator(width, (1, 4, 3), 4, tags[0][1]["image_shape"]),
        "tags": dict(tags),
    }


presets = {
    # AP: COCO val2017, single scale with flip test, as published in the
    # official README.
    "higherhrnet_w32": _higherhrnet(
        32,
        [
            ("coco_512", _tag(32, 512, 0.671)),
            ("coco_640", _tag(32, 640, 0.685)),
            (
                "mmpose_coco_512",
                _mmpose_tag(
                    32,
                    512,
                    "higher_hrnet32_coco_512x512-8ae85183_20200713.pth",
                    0.677,
                    0.706,
                ),
            ),
            (
                "mmpose_coco_640",
                _mmpose_tag(
                    32,
                    640,
                    "higher_hrnet32_coco_640x640-a22fe938_20200712.pth",
                    0.686,
                    0.706,
                ),
            ),
        ],
    ),
    # MMPose has no W48 640 checkpoint, the official zoo no W48 512 one.
    "higherhrnet_w48": _higherhrnet(
        48,
        [
            ("coco_640", _tag(48, 640, 0.699)),
            (
                "mmpose_coco_512",
                _mmpose_tag(
                    48,
                    512,
                    "higher_hrnet48_coco_512x512-60fedcbc_20200712.pth",
                    0.686,
                    0.716,
                ),
            ),
        ],
    ),
    # Tiny configuration for tests: the official structure at small
    # widths (the shape of the reference fixture, 17 joints).
    "test_higherhrnet": {
        "metadata": {
            "family": "higherhrnet",
            "description": "Tiny HigherHRNet for tests (widths 8-64).",
            "paper": _PAPER,
        },
        "config": _estimator(8, (1, 1, 1), 1, (128, 96, 3)),
        "tags": {},
    },
}
