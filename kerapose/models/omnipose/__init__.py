from kerapose.models.omnipose.omnipose_backbone import (
    OmniPoseBackbone as OmniPoseBackbone,
)
from kerapose.models.omnipose.omnipose_presets import presets
from kerapose.zoo.registry import register_presets

register_presets(presets)
