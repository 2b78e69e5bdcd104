"""Parameter and multiply-accumulate counts, by the official papers' rules."""

import math

from keras import layers

_STATS = ("moving_mean", "moving_variance")


def count_params(model) -> int:
    """Counts parameters the way PyTorch's `parameters()` does.

    BatchNorm moving statistics are buffers in PyTorch and are left out;
    frozen weights (e.g. fixed Gaussian filters) are counted.
    """
    return sum(
        math.prod(v.shape) for v in model.weights if not v.path.endswith(_STATS)
    )


def _input_shape(layer):
    shapes = getattr(layer, "_build_shapes_dict", None) or {}
    if len(shapes) != 1:
        raise ValueError(
            f"Layer '{layer.name}' has not been built with one input; build "
            "the model with a static image_shape before counting MACs."
        )
    return tuple(next(iter(shapes.values())))


def _layer_macs(layer):
    if isinstance(layer, layers.Conv2DTranspose):
        shape = _input_shape(layer)
        kh, kw = layer.kernel_size
        return math.prod(shape[1:3]) * shape[3] * layer.filters * kh * kw
    if isinstance(layer, layers.DepthwiseConv2D):
        out = layer.compute_output_shape(_input_shape(layer))
        kh, kw = layer.kernel_size
        return math.prod(out[1:]) * kh * kw
    if isinstance(layer, layers.SeparableConv2D):
        shape = _input_shape(layer)
        out = layer.compute_output_shape(shape)
        kh, kw = layer.kernel_size
        depthwise = math.prod(out[1:3]) * shape[3] * layer.depth_multiplier
        return depthwise * kh * kw + math.prod(out[1:3]) * (
            shape[3] * layer.depth_multiplier * layer.filters
        )
    if isinstance(layer, layers.Conv2D):
        shape = _input_shape(layer)
        out = layer.compute_output_shape(shape)
        kh, kw = layer.kernel_size
        cin = shape[3] // layer.groups
        return math.prod(out[1:]) * cin * kh * kw
    if isinstance(layer, layers.Dense):
        shape = _input_shape(layer)
        return math.prod(shape[1:]) * layer.units
    return 0


def count_macs(model) -> int:
    """Multiply-accumulates of one image through `model`.

    Counts convolutions (output elements x input channels per group x kernel
    area), transposed convolutions (input elements x output channels x kernel
    area) and dense layers; batch norm, activations, pooling and resizing are
    free. This is the rule of the figures in the HRNet, OmniPose and RSN
    model cards. The model must have a static input height and width.
    """
    for shape in (model.input_shape,) if hasattr(model, "input_shape") else ():
        if any(s is None for s in shape[1:]):
            raise ValueError(
                "count_macs needs a static input size; build the model with "
                f"e.g. image_shape=(256, 192, 3). Received {shape}."
            )
    return sum(
        _layer_macs(layer)
        for layer in model._flatten_layers(include_self=False, recursive=True)
    )
