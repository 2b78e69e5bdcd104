import numpy as np
from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export


def aligned_interpolation_matrix(out_size, in_size):
    """(out, in) weights of 1-D linear resampling with aligned corners.

    Output pixel i samples input position `i * (in - 1) / (out - 1)`, so the
    first and last pixels of both grids coincide (PyTorch's
    `align_corners=True`).
    """
    matrix = np.zeros((out_size, in_size), np.float32)
    if in_size == 1 or out_size == 1:
        matrix[:, 0] = 1.0
        return matrix
    src = np.arange(out_size, dtype=np.float64) * (in_size - 1) / (out_size - 1)
    low = np.clip(np.floor(src).astype(int), 0, in_size - 2)
    frac = src - low
    rows = np.arange(out_size)
    matrix[rows, low] = 1.0 - frac
    matrix[rows, low + 1] += frac
    return matrix


@kerapose_export("kerapose.layers.AlignedBilinearResize")
class AlignedBilinearResize(layers.Layer):
    """Bilinear resize to a fixed size with corner-aligned sampling.

    Keras' own bilinear resizing uses half-pixel centres and gives different
    numbers from PyTorch's `interpolate(..., align_corners=True)`, which RSN
    uses between its decoder levels. The resize is separable, so it runs as
    two small matrix products (rows, then columns); it has no weights.

    Args:
        size: tuple `(h, w)`. Output height and width.

    Example:
    ```python
    layer = kerapose.layers.AlignedBilinearResize((6, 4))
    layer(np.zeros((1, 3, 2, 8), "float32")).shape  # (1, 6, 4, 8)
    ```
    """

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(
                f"`size` must be a positive (h, w). Received: size={size}"
            )
        self.size = size

    def build(self, input_shape):
        h, w = input_shape[1:3]
        if h is None or w is None:
            raise ValueError(
                "AlignedBilinearResize needs a static input height and "
                f"width. Received input shape {tuple(input_shape)}."
            )
        self._rows = aligned_interpolation_matrix(self.size[0], h)
        self._cols = aligned_interpolation_matrix(self.size[1], w)

    def call(self, inputs):
        if tuple(inputs.shape[1:3]) == self.size:
            return inputs  # aligned resampling to the same size is identity
        rows = ops.convert_to_tensor(self._rows, dtype=inputs.dtype)
        cols = ops.convert_to_tensor(self._cols, dtype=inputs.dtype)
        x = ops.einsum("oh,bhwc->bowc", rows, inputs)
        return ops.einsum("pw,bowc->bopc", cols, x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config["size"] = list(self.size)
        return config
