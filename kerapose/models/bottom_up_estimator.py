import warnings

import keras
from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.models.pose_estimator import PoseEstimator

# How the official code scales RGB pixels (0-255) before the network.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_NORMALIZATIONS = {
    # HigherHRNet: torchvision ToTensor + Normalize.
    "imagenet": "RGB / 255, then minus the ImageNet mean, over its std",
    # Associative Embedding hourglass: `cv2.warpAffine(img, ...) / 255`.
    "unit": "RGB / 255 only",
}


@kerapose_export("kerapose.models.BottomUpPoseEstimator")
class BottomUpPoseEstimator(PoseEstimator):
    """Bottom-up estimator: whole images in, heatmaps and tag maps out.

    `call` returns a list of output maps, each (B, h_i, w_i, C_i):

    * `HourglassBackbone` (Associative Embedding), no head: one output per
      stack, all at stride 4; channels 0..K-1 are heatmaps, K..2K-1 tags
      (the official network has 68 channels; the rest are unused).
    * `HRNetBackbone` plus `HigherHRNetHead`: `[output_0` (stride 4, K
      heatmaps then the tag maps), `output_1` (stride 2, K heatmaps)`]`.

    Attributes describe the outputs for the loss and the decoder:
    `output_strides`, `tag_outputs` (has tags, per output),
    `heatmap_outputs_for_test` and `tag_outputs_for_test` (which outputs
    the official test aggregates), `output_resolution_index` (which target
    resolution supervises each output), `tag_dim` (1: a scalar tag per
    joint) and `tag_channels` (tag maps per tagged output).

    Inputs are RGB float32 images normalised as `input_normalization`
    says; `normalize_images` does it from 0-255 pixels. Height and width
    must be multiples of the backbone's `input_divisor` (64 for the
    hourglass, 32 for HRNet); they may be `None` for multi-scale testing.

    `compile()` with `loss="auto"` uses `kerapose.losses.BottomUpLoss`
    (heatmap MSE plus associative-embedding push/pull); targets are the
    bottom-up pipeline's dict. `predict` returns the raw output list.

    Args:
        backbone: `kerapose.models.Backbone`. A `HourglassBackbone` (it
            emits the predictions) or a feature backbone with a `head`.
        head: `None` or a layer mapping the backbone output to the output
            list, e.g. `kerapose.models.HigherHRNetHead`.
        num_keypoints: int. Defaults to `17`. A head (or an hourglass too
            narrow for 2K channels) of another size is rebuilt from its
            config for this many keypoints.
        input_normalization: str. `"imagenet"` or `"unit"`.
            Recorded so that inference normalises as the weights expect.
            Defaults to `"imagenet"`.
        dtype: `None`, str or `keras.DTypePolicy`, applied to the head
            (the backbone takes its own).

    Example:
    ```python
    model = kerapose.zoo.load("test_higherhrnet")
    outputs = model.predict(np.zeros((1, 128, 96, 3), "float32"))
    [o.shape for o in outputs]  # [(1, 32, 24, 34), (1, 64, 48, 17)]
    ```
    """

    task = "bottom_up"
    tag_dim = 1

    def __init__(
        self,
        backbone,
        head=None,
        num_keypoints=17,
        input_normalization="imagenet",
        dtype=None,
        **kwargs,
    ):
        if (
            isinstance(num_keypoints, bool)
            or not isinstance(num_keypoints, int)
            or num_keypoints <= 0
        ):
            raise ValueError(
                "`num_keypoints` must be a positive int (17 for COCO, 14 for "
                f"CrowdPose). Received: {num_keypoints!r}"
            )
        if input_normalization not in INPUT_NORMALIZATIONS:
            raise ValueError(
                f"`input_normalization` must be one of "
                f"{sorted(INPUT_NORMALIZATIONS)}. Received: "
                f"{input_normalization!r}"
            )
        backbone, head = _fit_to_keypoints(backbone, head, num_keypoints, dtype)

        # === Functional Model ===
        inputs = layers.Input(
            shape=tuple(backbone.input_shape[1:]), name="images"
        )
        outputs = backbone(inputs)
        if head is not None:
            outputs = head(outputs)
        super().__init__(inputs=inputs, outputs=list(outputs), **kwargs)

        # === Config ===
        self.backbone = backbone
        self.head = head
        self.num_keypoints = num_keypoints
        self.input_normalization = input_normalization
        self.loss_fn = None
        if head is None:
            n = backbone.num_stacks
            self.output_strides = list(backbone.output_strides)
            self.tag_outputs = [True] * n
            # The official test reads the last stack only.
            self.heatmap_outputs_for_test = [False] * (n - 1) + [True]
            self.tag_outputs_for_test = [False] * (n - 1) + [True]
            self.output_resolution_index = [0] * n
            self.tag_channels = num_keypoints
            self.head_prefixes = tuple(
                f"stack{s}_{name}/"
                for s in range(n)
                for name in ("output", "merge_pred")
            )
        else:
            self.output_strides = [4, 2]
            self.tag_outputs = [True, False]
            self.heatmap_outputs_for_test = [True, True]
            self.tag_outputs_for_test = [True, False]
            self.output_resolution_index = [0, 1]
            self.tag_channels = head.tag_channels
            self.head_prefixes = (f"{head.name}/",)

    def normalize_images(self, images):
        """RGB pixels on the 0-255 scale -> the network's float32 input."""
        x = ops.cast(images, "float32") / 255.0
        if self.input_normalization == "imagenet":
            x = (x - ops.array(IMAGENET_MEAN)) / ops.array(IMAGENET_STD)
        return x

    def default_optimizer(self):
        # Both official recipes: Adam, lr 1e-3 (HigherHRNet) or 2e-4 (AE).
        lr = 2e-4 if self.head is None else 1e-3
        return keras.optimizers.Adam(lr)

    def default_loss(self):
        try:
            from kerapose.losses.bottom_up_loss import BottomUpLoss
        except ImportError as error:
            raise ValueError(
                "BottomUpPoseEstimator's default loss, "
                "kerapose.losses.BottomUpLoss, is not available in this "
                "installation. Pass `loss=` to compile()."
            ) from error
        return BottomUpLoss(
            self.num_keypoints,
            self.output_resolution_index,
            self.tag_outputs,
            # The AE trainer averages over stacks; HigherHRNet sums.
            output_reduction="mean" if self.head is None else "sum",
        )

    def compile(self, optimizer="auto", loss="auto", metrics=None, **kwargs):
        """Configures training; `"auto"` picks the official recipe.

        Args:
            optimizer: `"auto"` (Adam) or any Keras optimizer.
            loss: `"auto"` (`BottomUpLoss`) or a callable
                `loss(targets, outputs) -> scalar` taking the pipeline's
                target dict and the output list.
            metrics: optional Keras metrics.
            **kwargs: passed to `keras.Model.compile`.
        """
        if isinstance(loss, str) and loss == "auto":
            try:
                loss = self.default_loss()
            except ValueError as error:
                # Inference does not need a loss; training says why.
                warnings.warn(str(error))
                loss = None
        self.loss_fn = loss
        super().compile(
            optimizer=optimizer, loss=None, metrics=metrics, **kwargs
        )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if self.loss_fn is None:
            raise ValueError(
                "BottomUpPoseEstimator has no loss: call compile() with "
                "`loss=` (e.g. kerapose.losses.BottomUpLoss) before fit()."
            )
        loss = self.loss_fn(y, y_pred)
        if self.losses:
            loss = loss + ops.sum(ops.stack(self.losses))
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.layers.serialize(self.backbone),
                "head": (
                    None
                    if self.head is None
                    else keras.layers.serialize(self.head)
                ),
                "num_keypoints": self.num_keypoints,
                "input_normalization": self.input_normalization,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "head"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _fit_to_keypoints(backbone, head, num_keypoints, dtype):
    """Checks the parts and rebuilds them for `num_keypoints` if needed."""
    if head is None:
        if not hasattr(backbone, "output_strides"):
            raise ValueError(
                f"{type(backbone).__name__} emits features, not predictions: "
                "pass a `head` (e.g. kerapose.models.HigherHRNetHead), or use "
                "a backbone that predicts (kerapose.models.HourglassBackbone)."
            )
        if backbone.output_channels < 2 * num_keypoints:
            config = backbone.get_config()
            config["output_channels"] = 2 * num_keypoints
            backbone = type(backbone).from_config(config)
        return backbone, head
    if hasattr(backbone, "output_strides"):
        raise ValueError(
            f"{type(backbone).__name__} already emits the predictions; "
            "pass `head=None`."
        )
    if head.num_keypoints != num_keypoints or dtype is not None:
        config = head.get_config()
        config["num_keypoints"] = num_keypoints
        if dtype is not None:
            config["dtype"] = dtype
        head = type(head).from_config(config)
    return backbone, head
