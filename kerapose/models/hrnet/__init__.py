from kerapose.models.hrnet.hrnet_backbone import HRNetBackbone as HRNetBackbone
from kerapose.models.hrnet.hrnet_presets import presets
from kerapose.zoo.registry import register_presets

register_presets(presets)
