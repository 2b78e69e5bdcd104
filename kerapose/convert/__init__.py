"""Converters from official checkpoints to kerapose weights."""

from kerapose.convert.checkpoint_io import CheckpointFormatError
from kerapose.convert.checkpoint_io import UnsafeCheckpointError
from kerapose.convert.checkpoint_io import read_checkpoint
from kerapose.convert.core import CheckpointMismatchError
from kerapose.convert.core import ConversionReport
from kerapose.convert.core import apply_state_dict
from kerapose.convert.higherhrnet import convert_higherhrnet
from kerapose.convert.hourglass import convert_hourglass
from kerapose.convert.hrnet import convert_hrnet
from kerapose.convert.mmpose import to_official_with_options
from kerapose.convert.omnipose import convert_omnipose
from kerapose.convert.rsn import convert_rsn
from kerapose.convert.yolo_pose import convert_yolo_pose

CONVERTERS = {
    "higherhrnet": convert_higherhrnet,
    "hourglass": convert_hourglass,
    "hrnet": convert_hrnet,
    "omnipose": convert_omnipose,
    "rsn": convert_rsn,
    "yolo_pose": convert_yolo_pose,
}
# Each family's converter version. Bump a family's number whenever a change
# (to its converter, its MMPose renamer or the shared code) alters the
# weights it writes: `zoo.load` then converts a cached checkpoint again
# instead of loading what the older converter wrote.
CONVERTER_VERSIONS = {
    "higherhrnet": 1,
    "hourglass": 1,
    "hrnet": 1,
    "omnipose": 1,
    "rsn": 2,  # 2: the official RSN's BGR input folded into the stem
    "yolo_pose": 1,
}
# Backbone class name -> family. Looked up along the MRO, so a subclass
# registered here (OmniPoseBackbone) wins over its parent (HRNetBackbone).
BACKBONE_FAMILIES = {
    "HourglassBackbone": "hourglass",
    "HRNetBackbone": "hrnet",
    "OmniPoseBackbone": "omnipose",
    "RSNBackbone": "rsn",
    "YOLOPoseBackbone": "yolo_pose",
}


# Head class name -> family, looked up before the backbone: HigherHRNet is
# an HRNetBackbone with its own head.
HEAD_FAMILIES = {
    "HigherHRNetHead": "higherhrnet",
}


def family_of(model):
    head = getattr(model, "head", None)
    for cls in type(head).__mro__ if head is not None else ():
        if cls.__name__ in HEAD_FAMILIES:
            return HEAD_FAMILIES[cls.__name__]
    backbone = getattr(model, "backbone", model)
    for cls in type(backbone).__mro__:
        if cls.__name__ in BACKBONE_FAMILIES:
            return BACKBONE_FAMILIES[cls.__name__]
    raise ValueError(
        f"No checkpoint converter for backbone {type(backbone).__name__}. "
        f"Pass `family=` (one of {sorted(CONVERTERS)})."
    )


def convert_checkpoint(
    model, checkpoint, family=None, strict=True, layout=None, **kwargs
):
    """Loads an official checkpoint with the converter for the model's family.

    Args:
        model: kerapose estimator or backbone.
        checkpoint: file path, or dict of official key -> array.
        family: str or `None`. A key of `CONVERTERS`; `None` picks it from
            the backbone class.
        strict: bool. Raise without assigning anything unless the
            checkpoint fits exactly. Defaults to `True`.
        layout: `"official"`, `"mmpose"` (MMPose 0.x or 1.x HRNet keys,
            renamed to the official ones first) or `None` to detect it
            from the keys. Defaults to `None`.
        **kwargs: passed to the converter (e.g. `skip_prefixes`).

    Returns:
        `ConversionReport`.
    """
    family = family or family_of(model)
    if family not in CONVERTERS:
        raise ValueError(
            f"Unknown family {family!r}; known: {sorted(CONVERTERS)}."
        )
    state_dict, options = to_official_with_options(checkpoint, family, layout)
    # The layout's options (an MMPose RSN file's RGB input) unless the
    # caller sets them.
    kwargs = {**options, **kwargs}
    return CONVERTERS[family](model, state_dict, strict=strict, **kwargs)


__all__ = [
    "CONVERTERS",
    "CONVERTER_VERSIONS",
    "CheckpointFormatError",
    "CheckpointMismatchError",
    "ConversionReport",
    "UnsafeCheckpointError",
    "apply_state_dict",
    "convert_checkpoint",
    "family_of",
    "convert_higherhrnet",
    "convert_hourglass",
    "convert_hrnet",
    "convert_omnipose",
    "convert_rsn",
    "convert_yolo_pose",
    "read_checkpoint",
]
