"""RSN presets: architecture configs as data, weights by tag.

Depths: RSN-18 has 2 RSBs per encoder layer, RSN-50 (3, 4, 6, 3) and
RSN-101 (3, 4, 23, 3). All use the expansion-1 RSB of the official RSN-18
network (the official repository's HEAD ships only that block; its RSN-50
file, deleted from the repository, set the expansion to 4 and grew to 295M
parameters, see zoo/rsn/README.md). `rsn_50_x4` is the paper's 4xRSN-50
with the Pose Refine Machine after the last stage.

The `*_mmpose` presets are MMPose's RSN (the same network without conv
biases, `conv_bias=False`), whose MMPose 1.x COCO checkpoints convert
through `kerapose.convert.mmpose`.
"""

# `kerapose.codecs.multi_sigma_heatmap.RSN_SIGMAS` (Gaussian kernels 15, 11,
# 9, 7, 5), written out: presets are read as data, without importing Keras.
RSN_SIGMAS = (2.6, 2.0, 1.7, 1.4, 1.1)

_OFFICIAL = (
    "Official RSN repository (caiyuanhao1998/RSN), checkpoints on the "
    "authors' Google Drive linked from its README, MIT licence"
)
_PAPER = "https://arxiv.org/abs/2003.04030"
_MMPOSE_URL = (
    "https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/"
    "topdown_heatmap/coco/"
)


# The official test (`dataset/attribute.py` TEST, `test.py`): boxes grown by
# 9% in width and 13.5% in height before the aspect fix; heatmaps blurred by
# a 5x5 Gaussian, the peak moved 0.25 px toward the second maximum, and a
# half-pixel offset (x * 4 + 2).
_OFFICIAL_TEST = {
    "refinement": "second_max",
    "blur_kernel_size": 5,
    "box_padding": [1.09, 1.135],
}


def _estimator(
    blocks,
    image_shape,
    num_stages=1,
    use_prm=False,
    widths=(64, 128, 256, 512),
    stem=64,
    upsample=256,
    num_keypoints=17,
    flip_shift=True,
    mmpose=None,
    official_test=False,
):
    """`mmpose`: `None` (the official network) or a dict of MMPose's
    `num_units` and `expand_times`; MMPose's RSN also has no conv biases.
    `official_test`: crop and decode as the official RSN test does."""
    h, w = image_shape[:2]
    extra, sigmas = {}, RSN_SIGMAS
    if mmpose is not None:
        extra = {**mmpose, "conv_bias": False}
        # A target per unit, plus the sharper one of the last stage.
        sigmas = RSN_SIGMAS[-(mmpose["num_units"] + 1) :]
    return {
        "class_name": "kerapose>RSNPoseEstimator",
        "config": {
            "backbone": {
                "class_name": "kerapose>RSNBackbone",
                "config": {
                    "stage_blocks": list(blocks),
                    "num_stages": num_stages,
                    "layer_channels": list(widths),
                    "stem_channels": stem,
                    "upsample_channels": upsample,
                    "num_keypoints": num_keypoints,
                    "use_prm": use_prm,
                    "image_shape": list(image_shape),
                    **extra,
                },
            },
            "num_keypoints": num_keypoints,
            "codec": {
                # One target per Gaussian size, coarse to fine, as the
                # official recipe trains the units of its stages.
                "class_name": "kerapose>MultiSigmaHeatmap",
                "config": {
                    "input_size": [h, w],
                    "heatmap_size": [h // 4, w // 4],
                    "sigmas": list(sigmas),
                    "flip_shift": flip_shift,
                    **(_OFFICIAL_TEST if official_test else {}),
                },
            },
        },
    }


def _tag(name, image_shape, ap, checkpoint=None):
    h, w = image_shape[:2]
    tag = {
        "image_shape": list(image_shape),
        "metrics": {"coco/AP": ap} if ap is not None else {},
        "weights": {
            "file": f"{name}_coco_{h}x{w}.weights.h5",
            "source": _OFFICIAL,
        },
    }
    if checkpoint:
        tag["weights"]["official_checkpoint"] = checkpoint
    return tag


def _official_preprocessing():
    """How the official RSN checkpoints were trained and tested, where it
    differs from kerapose's defaults (RGB, ImageNet mean/std on 0-1 pixels,
    flip test with a one-pixel heatmap shift, boxes padded by 1.25,
    quarter-pixel decode). From the official `exps/*/config.py`,
    `dataset/attribute.py`, `dataset/JointsDataset.py` and `test.py`.
    """
    return {
        # OpenCV's BGR with ImageNet's statistics in BGR order, on 0-1
        # pixels. `convert_rsn` folds it into the stem conv: the converted
        # model takes kerapose's RGB input.
        "channel_order": "bgr",
        "mean": [0.406, 0.456, 0.485],
        "std": [0.225, 0.224, 0.229],
        "folded_into_stem": True,
        # Honoured: the codec's `flip_shift` is False.
        "flip_heatmap_shift": False,
        # Honoured by the codec (`box_padding`, `refinement="second_max"`,
        # `blur_kernel_size=5`). Test box: w, h times (1 + extension),
        # then the aspect fix.
        "box_extension": [0.09, 0.135],
        # Heatmaps blurred (5x5 Gaussian), the argmax moved 0.25 px toward
        # the second maximum, then x * 4 + 2 input pixels.
        "decode": {
            "gaussian_kernel": 5,
            "shift_to_second_max": 0.25,
            "offset_input_px": 2,
            # Recorded only: kerapose scores are heatmap values (its
            # targets peak at 1, the official ones at 255); the codec's
            # `score_scale=1/255, score_offset=0.5` gives the official.
            "score": "value / 255 + 0.5",
        },
    }


def _rsn(name, description, blocks, tags, num_stages=1, use_prm=False):
    tags = {f"coco_{s[0]}x{s[1]}": _tag(name, s, ap) for s, ap in tags}
    for tag in tags.values():
        tag["preprocessing"] = _official_preprocessing()
    return {
        "metadata": {
            "family": "rsn",
            "description": description,
            "paper": _PAPER,
        },
        "config": _estimator(
            blocks,
            (256, 192, 3),
            num_stages=num_stages,
            use_prm=use_prm,
            flip_shift=False,
            official_test=True,
        ),
        "tags": tags,
    }


def _rsn_mmpose(name, model, blocks, num_stages, config, stamp, ap):
    """MMPose's RSN with its MMPose 1.x COCO checkpoint.

    The checkpoint is `<config>-<stamp>.pth`; `stamp` is
    `<sha256[:8]>_<date>`, as MMPose's `publish_model.py` names files.
    """
    return {
        "metadata": {
            "family": "rsn",
            "description": (
                f"{model} as MMPose builds it (no conv biases), for MMPose's "
                "COCO weights."
            ),
            "paper": _PAPER,
        },
        "config": _estimator(
            blocks,
            (256, 192, 3),
            num_stages=num_stages,
            flip_shift=False,  # MMPose's RSN configs flip without a shift
            mmpose={"num_units": 4, "expand_times": 26},
        ),
        "tags": {
            "coco_256x192": {
                "image_shape": [256, 192, 3],
                "metrics": {"coco/AP": ap},
                "weights": {
                    "file": f"{name}_coco_256x192.weights.h5",
                    "url": f"{_MMPOSE_URL}{config}-{stamp}.pth",
                    "sha256_prefix": stamp.split("_")[0],
                    "layout": "mmpose-1.x",
                    "source": (
                        "MMPose 1.x model zoo (open-mmlab/mmpose), config "
                        "configs/body_2d_keypoint/topdown_heatmap/coco/"
                        f"{config}.py"
                    ),
                    "licence": "Apache-2.0",
                },
            }
        },
    }


presets = {
    # AP: COCO val2017 with person detector boxes, from the official README.
    "rsn_18": _rsn(
        "rsn_18",
        "RSN-18 top-down pose estimator (COCO 17 keypoints).",
        (2, 2, 2, 2),
        [((256, 192, 3), 0.736)],
    ),
    "rsn_50": _rsn(
        "rsn_50",
        "RSN-50 (expansion-1 RSBs) top-down pose estimator.",
        (3, 4, 6, 3),
        [((256, 192, 3), 0.747)],
    ),
    "rsn_101": _rsn(
        "rsn_101",
        "RSN-101 (expansion-1 RSBs) top-down pose estimator.",
        (3, 4, 23, 3),
        [((256, 192, 3), 0.758)],
    ),
    # The official repository's multi-stage experiment (no PRM, no AP).
    "rsn_18_x4": _rsn(
        "rsn_18_x4",
        "4xRSN-18 as in the official 4XRSN18.coco experiment.",
        (2, 2, 2, 2),
        [((256, 192, 3), None)],
        num_stages=4,
    ),
    "rsn_50_x4": _rsn(
        "rsn_50_x4",
        "4xRSN-50 with PRM after the last stage (the paper's model).",
        (3, 4, 6, 3),
        [((256, 192, 3), 0.790), ((384, 288, 3), 0.796)],
        num_stages=4,
        use_prm=True,
    ),
    # MMPose 1.x COCO models. AP: MMPose's model zoo (COCO val2017, person
    # detector boxes, flip test).
    "rsn_18_mmpose": _rsn_mmpose(
        "rsn_18_mmpose",
        "RSN-18",
        (2, 2, 2, 2),
        1,
        "td-hm_rsn18_8xb32-210e_coco-256x192",
        "9049ed09_20221013",
        0.704,
    ),
    "rsn_50_mmpose": _rsn_mmpose(
        "rsn_50_mmpose",
        "RSN-50",
        (3, 4, 6, 3),
        1,
        "td-hm_rsn50_8xb32-210e_coco-256x192",
        "c35901d5_20221013",
        0.724,
    ),
    "rsn_50_x2_mmpose": _rsn_mmpose(
        "rsn_50_x2_mmpose",
        "2xRSN-50",
        (3, 4, 6, 3),
        2,
        "td-hm_2xrsn50_8xb32-210e_coco-256x192",
        "9ede341e_20221013",
        0.748,
    ),
    "rsn_50_x3_mmpose": _rsn_mmpose(
        "rsn_50_x3_mmpose",
        "3xRSN-50",
        (3, 4, 6, 3),
        3,
        "td-hm_3xrsn50_8xb32-210e_coco-256x192",
        "c3e3c4fe_20221013",
        0.750,
    ),
    # Tiny configuration for tests: two stages, PRM, every kind of layer.
    "test_rsn": {
        "metadata": {
            "family": "rsn",
            "description": "Tiny 2-stage RSN with PRM for tests and demos.",
            "paper": _PAPER,
        },
        "config": _estimator(
            (1, 1, 1, 1),
            (64, 64, 3),
            num_stages=2,
            use_prm=True,
            widths=(8, 16, 32, 64),
            stem=8,
            upsample=16,
        ),
        "tags": {},
    },
    # The `mmpose_rsn_tiny` reference fixture's network: MMPose's RSN with
    # 3 units, branch factor 6 and no conv biases.
    "test_rsn_mmpose": {
        "metadata": {
            "family": "rsn",
            "description": "Tiny 2-stage, 3-unit MMPose RSN for tests.",
            "paper": _PAPER,
        },
        "config": _estimator(
            (1, 1, 1),
            (96, 64, 3),
            num_stages=2,
            widths=(64, 128, 256),
            upsample=16,
            mmpose={"num_units": 3, "expand_times": 6},
        ),
        "tags": {},
    },
}
