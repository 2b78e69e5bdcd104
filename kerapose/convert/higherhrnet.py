"""Official HigherHRNet (`PoseHigherResolutionNet`) checkpoints.

The backbone keys are the official HRNet ones (`hrnet_key_map`). The head
keys: `final_layers.<i>` (1x1 convs with bias), `deconv_layers.0.0.{0,1}`
(transposed conv, BN) and `deconv_layers.0.<k>.0.*` (the BasicBlocks,
k = 1..4, each in its own `nn.Sequential`).
"""

import re

from kerapose.convert.checkpoint_io import as_state_dict
from kerapose.convert.core import BN_LEAVES
from kerapose.convert.core import conv_kernel
from kerapose.convert.core import conv_transpose_kernel
from kerapose.convert.core import identity
from kerapose.convert.hourglass import load_with_layout_hint
from kerapose.convert.hrnet import hrnet_key_map

_BLOCK = re.compile(r"deconv_block(\d+)/conv(\d)/(conv|bn)/(\w+)")


def head_key_map(path):
    """`HigherHRNetHead` variable path (below the head) -> official key.

    Example: `"deconv_block0/conv2/bn/gamma"` ->
    `("deconv_layers.0.1.0.bn2.weight", identity)`.
    """
    match = re.fullmatch(r"final_layer(\d)/(kernel|bias)", path)
    if match is not None:
        i, leaf = match.groups()
        if leaf == "kernel":
            return f"final_layers.{i}.weight", conv_kernel
        return f"final_layers.{i}.bias", identity
    if path == "deconv/kernel":
        return "deconv_layers.0.0.0.weight", conv_transpose_kernel
    layer, _, leaf = path.partition("/")
    if layer == "deconv_bn" and leaf in BN_LEAVES:
        return f"deconv_layers.0.0.1.{BN_LEAVES[leaf]}", identity
    match = _BLOCK.fullmatch(path)
    if match is not None:
        block, j, kind, leaf = match.groups()
        # Index 0 of the official Sequential is the deconvolution.
        module = f"deconv_layers.0.{int(block) + 1}.0"
        if kind == "conv" and leaf == "kernel":
            return f"{module}.conv{j}.weight", conv_kernel
        if kind == "bn" and leaf in BN_LEAVES:
            return f"{module}.bn{j}.{BN_LEAVES[leaf]}", identity
    return None


def higherhrnet_key_map(head_name="higherhrnet_head"):
    """A key map for a model whose head layer is named `head_name`."""
    prefix = f"{head_name}/"

    def key_map(path):
        if path.startswith(prefix):
            return head_key_map(path[len(prefix) :])
        if path.startswith("heatmap_head/"):
            return None  # HRNet's top-down head; HigherHRNet has none.
        return hrnet_key_map(path)

    return key_map


def convert_higherhrnet(model, checkpoint, strict=True, skip_prefixes=()):
    """Loads an official HigherHRNet checkpoint into a kerapose model.

    Args:
        model: `BottomUpPoseEstimator` with an `HRNetBackbone` and a
            `HigherHRNetHead`, or the backbone alone (then the head
            tensors count as unexpected).
        checkpoint: path to a `.pth`/`.npz`/`.safetensors` file, or a dict
            of official key -> array.
        strict: bool. Raise, without assigning anything, unless every
            variable gets a tensor of the right shape and every tensor is
            used. Defaults to `True`.
        skip_prefixes: tuple of str. Variable-path prefixes to leave as
            they are, e.g. `model.head_prefixes` for another joint count.

    Returns:
        `ConversionReport`.

    Raises:
        CheckpointMismatchError: `strict` and the checkpoint does not fit;
            the hint names the layout the file looks like.
    """
    head = getattr(model, "head", None)
    key_map = higherhrnet_key_map(
        head.name if head is not None else "higherhrnet_head"
    )
    return load_with_layout_hint(
        model,
        as_state_dict(checkpoint),
        key_map,
        "higherhrnet",
        strict=strict,
        skip_prefixes=skip_prefixes,
    )
