import keras
from keras import layers

from kerapose.api_export import kerapose_export
from kerapose.codecs.msra_heatmap import MSRAHeatmap
from kerapose.layers.conv2d import Conv2D
from kerapose.layers.conv_bn_act import official_conv_initializer
from kerapose.losses.keypoint_mse import KeypointMSE
from kerapose.models.pose_estimator import PoseEstimator


@kerapose_export("kerapose.models.TopDownPoseEstimator")
class TopDownPoseEstimator(PoseEstimator):
    """Top-down estimator: one person crop in, K heatmaps out.

    `call` returns heatmaps (B, h, w, K); `predict` also decodes them with the
    codec into `keypoints` (B, K, 2) in crop pixels and `scores` (B, K).
    Train with `fit(images, heatmaps, sample_weight=keypoint_weights)` or a
    dataset yielding that triple.

    Shapes: B batch, K keypoints, (H, W) input, (h, w) heatmap.

    Args:
        backbone: `kerapose.models.Backbone`. Returns stride-4 features.
        num_keypoints: int. Defaults to `17` (COCO).
        codec: heatmap codec, e.g. `kerapose.codecs.MSRAHeatmap`. Defaults
            to Gaussian heatmaps at 1/4 of the backbone's input size.
        head_kernel_size: int. Kernel of the final conv. Defaults to `1`.

    Example:
    ```python
    model = kerapose.zoo.load("test_hrnet")
    out = model.predict(np.zeros((1, 64, 64, 3), "float32"))
    out["keypoints"].shape  # (1, 17, 2)
    ```
    """

    head_prefixes = ("heatmap_head/",)

    def __init__(
        self,
        backbone,
        num_keypoints=17,
        codec=None,
        head_kernel_size=1,
        dtype=None,
        **kwargs,
    ):
        if (
            isinstance(num_keypoints, bool)
            or not isinstance(num_keypoints, int)
            or num_keypoints <= 0
        ):
            raise ValueError(
                "`num_keypoints` must be a positive int (17 for COCO, 16 for "
                f"MPII, 14 for CrowdPose). Received: {num_keypoints!r}"
            )
        image_shape = tuple(backbone.input_shape[1:])
        if codec is None:
            h, w = (s or d for s, d in zip(image_shape[:2], (256, 192)))
            codec = MSRAHeatmap(
                input_size=(h, w), heatmap_size=(h // 4, w // 4)
            )

        # === Functional Model ===
        inputs = layers.Input(shape=image_shape, name="images")
        features = backbone(inputs)
        heatmaps = Conv2D(
            num_keypoints,
            head_kernel_size,
            padding="same",
            kernel_initializer=official_conv_initializer(),
            bias_initializer="zeros",
            dtype=dtype,
            name="heatmap_head",
        )(features)
        super().__init__(inputs=inputs, outputs=heatmaps, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.num_keypoints = num_keypoints
        self.codec = codec
        self.head_kernel_size = head_kernel_size

    def default_loss(self):
        return KeypointMSE()

    def final_heatmaps(self, outputs):
        """The model's outputs -> the heatmaps (B, h, w, K) it is tested on
        (multi-stage families keep the last)."""
        return outputs

    def decode(self, heatmaps):
        """Heatmaps (B, h, w, K) -> dict of heatmaps, keypoints, scores."""
        keypoints, scores = self.codec.decode(heatmaps)
        return {"heatmaps": heatmaps, "keypoints": keypoints, "scores": scores}

    def predict_step(self, *args):
        outputs = super().predict_step(*args)
        # The JAX trainer returns (outputs, non_trainable_variables).
        if isinstance(outputs, tuple):
            return self.decode(outputs[0]), outputs[1]
        return self.decode(outputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.layers.serialize(self.backbone),
                "num_keypoints": self.num_keypoints,
                "codec": keras.saving.serialize_keras_object(self.codec),
                "head_kernel_size": self.head_kernel_size,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "codec"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
