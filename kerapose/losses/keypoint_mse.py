import keras
from keras import ops

from kerapose.api_export import kerapose_export


@kerapose_export("kerapose.losses.KeypointMSE")
class KeypointMSE(keras.losses.Loss):
    """Heatmap mean squared error per keypoint, as in the HRNet recipe.

    Returns one value per (instance, keypoint): `0.5 * mean_hw (y - y')^2`.
    Pass the codec's keypoint weights as `sample_weight` (shape (B, K)); the
    default `"sum_over_batch_size"` reduction then divides by B * K, so a
    batch where every weight is 0 (no visible people) gives loss 0, not NaN.

    Shapes: B batch, K keypoints, (h, w) heatmap.

    Args:
        reduction: str. Defaults to `"sum_over_batch_size"`.
        name: str. Defaults to `"keypoint_mse"`.
    """

    def __init__(
        self, reduction="sum_over_batch_size", name="keypoint_mse", dtype=None
    ):
        super().__init__(reduction=reduction, name=name, dtype=dtype)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        return 0.5 * ops.mean(ops.square(y_pred - y_true), axis=(1, 2))
