from kerapose.models.rsn.rsn_backbone import RSNBackbone as RSNBackbone
from kerapose.models.rsn.rsn_estimator import (
    RSNPoseEstimator as RSNPoseEstimator,
)
from kerapose.models.rsn.rsn_presets import presets
from kerapose.zoo.registry import register_presets

register_presets(presets)
