"""Backbones and estimators. Importing this registers every family's presets."""

from kerapose.models import hrnet as hrnet
from kerapose.models import omnipose as omnipose
from kerapose.models import rsn as rsn
from kerapose.models.backbone import Backbone as Backbone
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

__all__ = [
    "Backbone",
    "HRNetBackbone",
    "OmniPoseBackbone",
    "PoseEstimator",
    "RSNBackbone",
    "RSNPoseEstimator",
    "TopDownPoseEstimator",
]
