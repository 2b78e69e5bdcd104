from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.losses.keypoint_mse import KeypointMSE


@kerapose_export("kerapose.losses.OHKMMSE")
class OHKMMSE(KeypointMSE):
    """Heatmap MSE averaged over the `topk` hardest keypoints per instance.

    Online hard keypoint mining (Chen et al., CPN, CVPR 2018), as the HRNet
    and RSN recipes use it: per-keypoint losses `0.5 * mean_hw (y - y')^2`
    are multiplied by the squared keypoint weight (the official code scales
    both maps by the weight), the `topk` largest per instance are averaged,
    then the batch is averaged. Instances without visible keypoints add 0.

    Shapes: B batch, K keypoints, (h, w) heatmap.

    Args:
        topk: int. Keypoints kept per instance. Defaults to `8`.
        name: str. Defaults to `"ohkm_mse"`.
    """

    def __init__(self, topk=8, name="ohkm_mse", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if int(topk) <= 0:
            raise ValueError(f"`topk` must be positive. Received: {topk}")
        self.topk = int(topk)

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Mining needs the weights before the reduction, so they are applied
        # here rather than by the base class.
        losses = self.call(y_true, y_pred)
        if sample_weight is not None:
            weight = ops.cast(sample_weight, losses.dtype)
            losses = losses * ops.square(weight)
        k = min(self.topk, losses.shape[-1])
        hardest, _ = ops.top_k(losses, k)
        return ops.mean(ops.sum(hardest, axis=-1) / k)

    def get_config(self):
        config = super().get_config()
        config["topk"] = self.topk
        config.pop("reduction", None)
        return config
