import keras
from keras import layers

from kerapose.api_export import kerapose_export
from kerapose.codecs.multi_sigma_heatmap import MultiSigmaHeatmap
from kerapose.losses.multi_stage_loss import MultiStageHeatmapLoss
from kerapose.models.rsn.rsn_backbone import check_input_size
from kerapose.models.top_down_estimator import TopDownPoseEstimator


@kerapose_export("kerapose.models.RSNPoseEstimator")
class RSNPoseEstimator(TopDownPoseEstimator):
    """Top-down RSN: every decoder unit of every stage predicts heatmaps.

    `call` returns all unit heatmaps, (B, U, h, w, K) with U = units x stages
    (see `RSNBackbone`; 4 units officially); the default loss
    (`MultiStageHeatmapLoss`) supervises each of them, with OHKM on the finest
    unit of every stage. `predict` decodes the last one (the final stage's
    finest unit, after PRM when the backbone has it) into `heatmaps` (B, h, w,
    K), `keypoints` (B, K, 2) and `scores` (B, K), like `TopDownPoseEstimator`,
    so the evaluation and inference helpers work unchanged.

    Targets: heatmaps (B, h, w, K), the same for every unit, or per-unit
    Gaussian sizes (B, T, h, w, K) as a `MultiSigmaHeatmap` codec encodes
    them in `kerapose.data.build_top_down_dataset`; keypoint weights
    (B, K) as `sample_weight`.

    Shapes: B batch, K keypoints, (H, W) input, (h, w) = (H/4, W/4).

    Args:
        backbone: `kerapose.models.RSNBackbone`.
        codec: heatmap codec. Defaults to `MultiSigmaHeatmap` (RSN's five
            Gaussian sizes) at 1/4 of the input.
        num_keypoints: int or `None`. If it differs from the backbone's,
            the backbone is rebuilt from its config with this many heatmap
            channels. Defaults to `None` (the backbone's).
        dtype: accepted for symmetry with `TopDownPoseEstimator`; the
            layers, all in the backbone, take the backbone's dtype.

    Example:
    ```python
    model = kerapose.zoo.load("test_rsn")
    out = model.predict(np.zeros((1, 64, 64, 3), "float32"))
    out["keypoints"].shape  # (1, 17, 2)
    ```
    """

    def __init__(
        self, backbone, codec=None, num_keypoints=None, dtype=None, **kwargs
    ):
        if num_keypoints is not None and num_keypoints != getattr(
            backbone, "num_keypoints", None
        ):
            if isinstance(num_keypoints, bool) or not isinstance(
                num_keypoints, int
            ):
                raise ValueError(
                    "`num_keypoints` must be a positive int. "
                    f"Received: {num_keypoints!r}"
                )
            config = backbone.get_config()
            config["num_keypoints"] = num_keypoints
            backbone = type(backbone).from_config(config)
        image_shape = tuple(backbone.input_shape[1:])
        if codec is None:
            h, w = image_shape[:2]
            codec = MultiSigmaHeatmap(
                input_size=(h, w), heatmap_size=(h // 4, w // 4)
            )

        # === Functional Model ===
        inputs = layers.Input(shape=image_shape, name="images")
        heatmaps = backbone(inputs)
        # Skips TopDownPoseEstimator's graph (RSN's heads are in the
        # backbone) but keeps its decoding and prediction.
        super(TopDownPoseEstimator, self).__init__(
            inputs=inputs, outputs=heatmaps, **kwargs
        )

        # === Config ===
        self.backbone = backbone
        self.num_keypoints = backbone.num_keypoints
        self.codec = codec
        self.units_per_stage = backbone.num_units

    def __call__(self, inputs, *args, **kwargs):
        check_input_size(inputs, self.backbone.image_shape, type(self).__name__)
        return super().__call__(inputs, *args, **kwargs)

    @property
    def head_prefixes(self):
        return self.backbone.heatmap_prefixes

    def default_loss(self):
        return MultiStageHeatmapLoss(units_per_stage=self.units_per_stage)

    def final_heatmaps(self, outputs):
        """Unit heatmaps (B, U, h, w, K) -> the last unit's (B, h, w, K)."""
        return outputs[:, -1] if len(outputs.shape) == 5 else outputs

    def decode(self, heatmaps):
        """Unit heatmaps (B, U, h, w, K) -> the last unit's decode."""
        return super().decode(self.final_heatmaps(heatmaps))

    def get_config(self):
        config = super(TopDownPoseEstimator, self).get_config()
        config.update(
            {
                "backbone": keras.layers.serialize(self.backbone),
                "codec": keras.saving.serialize_keras_object(self.codec),
            }
        )
        return config
