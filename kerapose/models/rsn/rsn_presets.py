"""RSN presets: architecture configs as data, weights by tag.

Depths: RSN-18 has 2 RSBs per encoder layer, RSN-50 (3, 4, 6, 3) and
RSN-101 (3, 4, 23, 3). All use the expansion-1 RSB of the official RSN-18
network (the official repository's HEAD ships only that block; its RSN-50
file, deleted from the repository, set the expansion to 4 and grew to 295M
parameters, see zoo/rsn/README.md). `rsn_50_x4` is the paper's 4xRSN-50
with the Pose Refine Machine after the last stage.
"""

# `kerapose.codecs.multi_sigma_heatmap.RSN_SIGMAS` (Gaussian kernels 15, 11,
# 9, 7, 5), written out: presets are read as data, without importing Keras.
RSN_SIGMAS = (2.6, 2.0, 1.7, 1.4, 1.1)

_OFFICIAL = (
    "Official RSN repository (caiyuanhao1998/RSN), checkpoints on the "
    "authors' Google Drive linked from its README, MIT licence"
)
_PAPER = "https://arxiv.org/abs/2003.04030"


def _estimator(
    blocks,
    image_shape,
    num_stages=1,
    use_prm=False,
    widths=(64, 128, 256, 512),
    stem=64,
    upsample=256,
    num_keypoints=17,
):
    h, w = image_shape[:2]
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
                    "sigmas": list(RSN_SIGMAS),
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


def _rsn(name, description, blocks, tags, num_stages=1, use_prm=False):
    return {
        "metadata": {
            "family": "rsn",
            "description": description,
            "paper": _PAPER,
        },
        "config": _estimator(
            blocks, (256, 192, 3), num_stages=num_stages, use_prm=use_prm
        ),
        "tags": {f"coco_{s[0]}x{s[1]}": _tag(name, s, ap) for s, ap in tags},
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
}
