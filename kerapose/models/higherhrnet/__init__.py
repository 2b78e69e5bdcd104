from kerapose.models.higherhrnet.higherhrnet_head import (
    HigherHRNetHead as HigherHRNetHead,
)
from kerapose.models.higherhrnet.higherhrnet_presets import presets
from kerapose.zoo.registry import register_presets

register_presets(presets)
