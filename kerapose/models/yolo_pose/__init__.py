from kerapose.models.yolo_pose.yolo_pose_backbone import (
    YOLOPoseBackbone as YOLOPoseBackbone,
)
from kerapose.models.yolo_pose.yolo_pose_decode import (
    decode_levels as decode_levels,
)
from kerapose.models.yolo_pose.yolo_pose_estimator import (
    YOLOPoseEstimator as YOLOPoseEstimator,
)
from kerapose.models.yolo_pose.yolo_pose_presets import presets
from kerapose.zoo.registry import register_presets

register_presets(presets)
