"""YOLO-Pose presets: architecture configs as data, weights by tag."""

_OFFICIAL = (
    "Official YOLO-Pose (TexasInstruments/edgeai-yolov5, branch yolo-pose), "
    "GPL-3.0"
)
_PAPER = "https://arxiv.org/abs/2204.06806"


def _estimator(
    width,
    depth,
    image_shape,
    stem="focus",
    activation="silu",
    depthwise_keypoint_head=True,
    num_keypoints=17,
):
    return {
        "class_name": "kerapose>YOLOPoseEstimator",
        "config": {
            "backbone": {
                "class_name": "kerapose>YOLOPoseBackbone",
                "config": {
                    "width_multiple": width,
                    "depth_multiple": depth,
                    "stem": stem,
                    "activation": activation,
                    "image_shape": list(image_shape),
                },
            },
            "num_keypoints": num_keypoints,
            "depthwise_keypoint_head": depthwise_keypoint_head,
        },
    }


def _tag(name, size, ap, checkpoint):
    return {
        "image_shape": [size, size, 3],
        "metrics": {"coco/AP": ap},
        "weights": {
            "file": f"{name}_coco_{size}x{size}.weights.h5",
            "official_checkpoint": checkpoint,
            "source": _OFFICIAL,
        },
    }


presets = {
    # AP: COCO val2017, single scale, as published in the official README.
    "yolo_pose_s6": {
        "metadata": {
            "family": "yolo_pose",
            "description": (
                "YOLO-Pose s6 single-stage pose estimator (COCO 17 "
                "keypoints), depthwise keypoint head."
            ),
            "paper": _PAPER,
        },
        "config": _estimator(0.5, 0.33, (640, 640, 3)),
        "tags": {
            "coco_640x640": _tag(
                "yolo_pose_s6",
                640,
                0.575,
                "yolov5s6_640_60p7_85p3_kpts_head_6x_dwconv_3x3_lr_0p01/"
                "weights/last.pt",
            ),
            "coco_960x960": _tag(
                "yolo_pose_s6",
                960,
                0.637,
                "yolov5s6_960_64p8_87p4_kpts_head_6x_dwconv_3x3_lr_0p01/"
                "weights/last.pt",
            ),
        },
    },
    "yolo_pose_s6_ti_lite": {
        "metadata": {
            "family": "yolo_pose",
            "description": (
                "YOLO-Pose s6 TI-lite (COCO 17 keypoints): ReLU, ConvFocus "
                "stem, single-conv keypoint head; for embedded export."
            ),
            "paper": _PAPER,
        },
        "config": _estimator(
            0.5,
            0.33,
            (640, 640, 3),
            stem="conv_focus",
            activation="relu",
            depthwise_keypoint_head=False,
        ),
        "tags": {
            "coco_640x640": _tag(
                "yolo_pose_s6_ti_lite",
                640,
                0.549,
                "yolov5s6_640_ti_lite_54p9_82p2/weights/last.pt",
            ),
        },
    },
    # The shipped m6 yaml lacks `dw_conv_kpt`, but the published checkpoint
    # (kpts_head_6x_dwconv_3x3) and its 66.3 GMACs have the depthwise head.
    "yolo_pose_m6": {
        "metadata": {
            "family": "yolo_pose",
            "description": (
                "YOLO-Pose m6 single-stage pose estimator (COCO 17 "
                "keypoints), depthwise keypoint head."
            ),
            "paper": _PAPER,
        },
        "config": _estimator(0.75, 0.67, (960, 960, 3)),
        "tags": {
            "coco_960x960": _tag(
                "yolo_pose_m6",
                960,
                0.674,
                "yolov5m6_960_67p8_89p3_kpts_head_6x_dwconv_3x3_lr_0p01/"
                "weights/last.pt",
            ),
        },
    },
    # Tiny configuration for tests: the official structure at 1/16 width
    # (every layer 8 to 64 channels), as the reference fixture.
    "test_yolo_pose": {
        "metadata": {
            "family": "yolo_pose",
            "description": "Tiny YOLO-Pose for tests and demos (width 1/16).",
            "paper": _PAPER,
        },
        "config": _estimator(0.0625, 0.33, (128, 128, 3)),
        "tags": {},
    },
}
