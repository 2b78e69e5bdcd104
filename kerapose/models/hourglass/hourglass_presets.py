"""Associative Embedding hourglass presets: configs as data, weights by tag."""

_OFFICIAL = (
    "Official Associative Embedding pretrained model "
    "(princeton-vl/pose-ae-train)"
)
_PAPER = "https://arxiv.org/abs/1611.05424"


def _estimator(num_stacks, inp_dim, increase, inner_increase, image_shape):
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
                    "output_channels": 68,
                    "image_shape": list(image_shape),
                },
            },
            "num_keypoints": 17,
            # The official code feeds RGB / 255, no mean or std.
            "input_normalization": "unit",
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
}
