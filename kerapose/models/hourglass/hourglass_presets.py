"""Associative Embedding hourglass presets: configs as data, weights by tag."""

_OFFICIAL = (
    "Official Associative Embedding pretrained model "
    "(princeton-vl/pose-ae-train)"
)
_PAPER = "https://arxiv.org/abs/1611.05424"
_MMPOSE = (
    "MMPose 0.x model zoo (open-mmlab/mmpose v0.29.0, "
    "configs/body/2d_kpt_sview_rgb_img/associative_embedding/coco/"
    "hourglass_ae_coco_512x512.py)"
)
_MMPOSE_FILE = "hourglass_ae_coco_512x512-90af499f_20210920.pth"


def _estimator(
    num_stacks,
    inp_dim,
    increase,
    inner_increase,
    image_shape,
    output_channels=68,
    # The official code feeds RGB / 255, no mean or std.
    input_normalization="unit",
):
    return {
        "class_name": "kerapose>BottomUpPoseEstimator",
        "config": {
            "backbone": {
                "class_name": "kerapose>HourglassBackbone",
                "config": {
                    "num_stacks": num_stacks,
                    "inp_dim": inp_dim,
                    "increase": increase,
                    "inner_increase": inner_increase,
                    "output_channels": output_channels,
                    "image_shape": list(image_shape),
                },
            },
            "num_keypoints": 17,
            "input_normalization": input_normalization,
        },
    }


presets = {
    "hourglass_ae": {
        "metadata": {
            "family": "hourglass",
            "description": (
                "Associative Embedding 4-stack hourglass, bottom-up (COCO "
                "17 keypoints): heatmaps and tags at 1/4. The official "
                "pretrained model reports about 0.59 AP single-scale on the "
                "repository's own validation split."
            ),
            "paper": _PAPER,
        },
        "config": _estimator(4, 256, 128, 128, (512, 512, 3)),
        "tags": {
            "coco_512": {
                "image_shape": [512, 512, 3],
                # No COCO val2017 figure is published for this model.
                "metrics": {},
                "weights": {
                    "file": "hourglass_ae_coco_512.weights.h5",
                    "official_checkpoint": "pretrained/checkpoint.pth.tar",
                    "source": _OFFICIAL,
                },
            },
        },
    },
    # MMPose's `HourglassAENet` is the official network with a BatchNorm
    # after each conv but the prediction convs; `kerapose convert` folds
    # them into the convs (eval mode), which gives this network exactly.
    # A preset of its own, not a tag of `hourglass_ae`: MMPose feeds
    # ImageNet-normalised RGB, the official code RGB / 255, and the stem's
    # zero padding makes that impossible to fold into the weights. Hence 34
    # output channels, as MMPose's, rather than 68 with 34 zero-padded ones:
    # the same outputs without computing and merging 34 zero maps a stack.
    "hourglass_ae_mmpose": {
        "metadata": {
            "family": "hourglass",
            "description": (
                "Associative Embedding 4-stack hourglass as MMPose trains it "
                "(COCO 17 keypoints, ImageNet-normalised input, 34 output "
                "channels: 17 heatmaps, 17 tags at 1/4)."
            ),
            "paper": _PAPER,
        },
        "config": _estimator(
            4,
            256,
            128,
            128,
            (512, 512, 3),
            output_channels=34,
            input_normalization="imagenet",
        ),
        "tags": {
            "coco_512": {
                "image_shape": [512, 512, 3],
                # MMPose's COCO val2017 figures.
                "metrics": {"coco/AP": 0.613, "coco/AP_multi_scale": 0.667},
                "weights": {
                    "file": "hourglass_ae_mmpose_coco_512.weights.h5",
                    "url": (
                        "https://download.openmmlab.com/mmpose/bottom_up/"
                        "hourglass_ae/" + _MMPOSE_FILE
                    ),
                    # The 8 hex digits in the file name (MMPose's
                    # publish_model.py).
                    "sha256_prefix": "90af499f",
                    "layout": "mmpose-0.x",
                    "source": _MMPOSE,
                    "licence": "Apache-2.0",
                    "metrics": {
                        "coco/AP": 0.613,
                        "coco/AP_multi_scale": 0.667,
                    },
                },
            },
        },
    },
    # Tiny configuration for tests: the official structure (2 stacks,
    # every hourglass level adds 8 channels), the reference fixture's shape.
    "test_hourglass_ae": {
        "metadata": {
            "family": "hourglass",
            "description": "Tiny 2-stack AE hourglass for tests (width 16).",
            "paper": _PAPER,
        },
        "config": _estimator(2, 16, 8, 8, (128, 64, 3)),
        "tags": {},
    },
    # The `mmpose_hourglass_ae_tiny` fixture's shape: widths 16 + 4 per
    # level (MMPose stage_channels 16, 20, 24, 28, 32), 34 outputs.
    "test_hourglass_ae_mmpose": {
        "metadata": {
            "family": "hourglass",
            "description": "Tiny 2-stack MMPose-style AE hourglass for tests.",
            "paper": _PAPER,
        },
        "config": _estimator(
            2,
            16,
            4,
            4,
            (128, 64, 3),
            output_channels=34,
            input_normalization="imagenet",
        ),
        "tags": {},
    },
}
