"""Backbones and estimators. Importing this registers every family's presets."""

from kerapose.models import higherhrnet as higherhrnet
from kerapose.models import hourglass as hourglass
from kerapose.models import hrnet as hrnet
from kerapose.models import omnipose as omnipose
from kerapose.models import rsn as rsn
from kerapose.models import yolo_pose as yolo_pose
from kerapose.models.backbone import Backbone as Backbone
from kerapose.models.bottom_up_estimator import (
    BottomUpPoseEstimator as BottomUpPoseEstimator,
)
from kerapose.models.higherhrnet.higherhrnet_head import (
    HigherHRNetHead as HigherHRNetHead,
)
from kerapose.models.hourglass.hourglass_backbone import (
    HourglassBackbone as HourglassBackbone,
)
from kerapose.models.hrnet.hrnet_backbone import HRNetBackbone as HRNetBackbone
from kerapose.models.omnipose.omnipose_backbone import (
    OmniPoseBackbone as OmniPoseBackbone,
)
from kerapose.models.pose_estimator import PoseEstimator as PoseEstimator
from kerapose.models.rsn.rsn_backbone import RSNBackbone as RSNBackbone
from kerapose.models.rsn.rsn_estimator import (
    RSNPoseEstimator as RSNPoseEstimator,
)
from kerapose.models.top_down_estimator import (
    TopDownPoseEstimator as TopDownPoseEstimator,
)
from kerapose.models.yolo_pose.yolo_pose_backbone import (
    YOLOPoseBackbone as YOLOPoseBackbone,
)
from kerapose.models.yolo_pose.yolo_pose_estimator import (
    YOLOPoseEstimator as YOLOPoseEstimator,
)

__all__ = [
    "Backbone",
    "BottomUpPoseEstimator",
    "HRNetBackbone",
    "HigherHRNetHead",
    "HourglassBackbone",
    "OmniPoseBackbone",
    "PoseEstimator",
    "RSNBackbone",
    "RSNPoseEstimator",
    "TopDownPoseEstimator",
    "YOLOPoseBackbone",
    "YOLOPoseEstimator",
]
