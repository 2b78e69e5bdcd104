import keras
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.losses.keypoint_mse import KeypointMSE
from kerapose.losses.ohkm_mse import OHKMMSE


@kerapose_export("kerapose.losses.MultiStageHeatmapLoss")
class MultiStageHeatmapLoss(keras.losses.Loss):
    """Intermediate supervision of multi-stage heatmap networks (RSN, MSPN).

    The official RSN recipe: every decoder unit of every stage gets its own
    heatmap loss and the losses are summed. The finest unit of each stage
    uses OHKM (`OHKMMSE`, top-k keypoints), the coarser units plain
    `KeypointMSE` scaled by `coarse_unit_weight` (1/4 officially).

    Targets either are one heatmap tensor (B, h, w, K), used for every unit,
    or hold T Gaussian sizes from coarse to fine (B, T, h, w, K) (see
    `kerapose.codecs.MultiSigmaHeatmap`): unit j of a stage uses target j,
    and with `T = units_per_stage + 1` the last stage uses target j + 1
    (the official coarse-to-fine rule, so the final prediction is trained on
    the sharpest Gaussian). `sample_weight` is the keypoint weights (B, K).

    Shapes: B batch, U = units_per_stage x stages, K keypoints, (h, w)
    heatmap; predictions are (B, U, h, w, K).

    Args:
        units_per_stage: int. Defaults to `4` (RSN's four decoder units).
        topk: int. Keypoints kept by OHKM. Defaults to `8`.
        coarse_unit_weight: float. Weight of the non-finest units. Defaults
            to `0.25`.
        name: str. Defaults to `"multi_stage_heatmap_loss"`.
    """

    def __init__(
        self,
        units_per_stage=4,
        topk=8,
        coarse_unit_weight=0.25,
        name="multi_stage_heatmap_loss",
        dtype=None,
        **kwargs,
    ):
        kwargs.pop("reduction", None)
        super().__init__(name=name, dtype=dtype, **kwargs)
        if int(units_per_stage) <= 0:
            raise ValueError(
                "`units_per_stage` must be positive. "
                f"Received: {units_per_stage}"
            )
        self.units_per_stage = int(units_per_stage)
        self.topk = int(topk)
        self.coarse_unit_weight = float(coarse_unit_weight)
        self._mse = KeypointMSE()
        self._ohkm = OHKMMSE(topk=self.topk)

    def _target_index(self, unit, num_units, num_targets):
        j = unit % self.units_per_stage
        last_stage = unit >= num_units - self.units_per_stage
        if num_targets == self.units_per_stage + 1 and last_stage:
            return j + 1
        return j

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        if len(y_pred.shape) != 5:
            raise ValueError(
                "MultiStageHeatmapLoss expects predictions (B, U, h, w, K). "
                f"Received shape {tuple(y_pred.shape)}."
            )
        num_units = y_pred.shape[1]
        if num_units % self.units_per_stage:
            raise ValueError(
                f"The {num_units} predicted units are not a whole number of "
                f"stages of {self.units_per_stage} units."
            )
        if getattr(y_true.shape, "rank", 0) is None:
            # TensorFlow relaxes shapes when it retraces for a second target
            # layout; the layout cannot be told apart without a rank.
            raise ValueError(
                "MultiStageHeatmapLoss needs targets of known rank. Use one "
                "target layout per compiled model (call compile() again "
                "before switching between (B, h, w, K) and (B, T, h, w, K))."
            )
        per_unit = len(y_true.shape) == 5
        num_targets = y_true.shape[1] if per_unit else None
        if per_unit and num_targets not in (
            self.units_per_stage,
            self.units_per_stage + 1,
        ):
            raise ValueError(
                f"Per-unit targets must hold {self.units_per_stage} or "
                f"{self.units_per_stage + 1} heatmap sizes (B, T, h, w, K). "
                f"Received shape {tuple(y_true.shape)}."
            )
        total = 0.0
        for unit in range(num_units):
            target = y_true
            if per_unit:
                index = self._target_index(unit, num_units, num_targets)
                target = y_true[:, index]
            finest = unit % self.units_per_stage == self.units_per_stage - 1
            if finest:
                loss = self._ohkm(target, y_pred[:, unit], sample_weight)
            else:
                loss = self._mse(target, y_pred[:, unit], sample_weight)
                loss = loss * self.coarse_unit_weight
            total = total + loss
        return total

    def get_config(self):
        return {
            "name": self.name,
            "units_per_stage": self.units_per_stage,
            "topk": self.topk,
            "coarse_unit_weight": self.coarse_unit_weight,
        }
