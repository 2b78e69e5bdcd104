from kerapose.models.hourglass.hourglass_backbone import (
    HourglassBackbone as HourglassBackbone,
)
from kerapose.models.hourglass.hourglass_presets import presets
from kerapose.zoo.registry import register_presets

register_presets(presets)
