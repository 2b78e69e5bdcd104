from keras import ops


def upsample_nearest(x, factor):
    """Nearest-neighbour upsampling by an integer factor (NHWC).

    With a static spatial shape this is one resize op, which TFLite runs as a
    single RESIZE_NEAREST_NEIGHBOR; otherwise it repeats rows and columns.
    Both equal PyTorch's `nn.Upsample(scale_factor=factor)`.
    """
    if factor == 1:
        return x
    h, w = x.shape[1], x.shape[2]
    if h is not None and w is not None:
        return ops.image.resize(
            x, (h * factor, w * factor), interpolation="nearest"
        )
    x = ops.repeat(x, factor, axis=1)
    return ops.repeat(x, factor, axis=2)
