import math

import keras
from keras import layers

from kerapose.api_export import kerapose_export
from kerapose.layers.yolo_layers import YOLOPoseLevelHead
from kerapose.models.pose_estimator import PoseEstimator

LEVELS = ("P3", "P4", "P5", "P6")
STRIDES = (8, 16, 32, 64)
# Official P6 anchors, (w, h) in input pixels, three per level.
YOLO_POSE_ANCHORS = (
    ((19, 27), (44, 40), (38, 94)),
    ((96, 68), (86, 152), (180, 137)),
    ((140, 301), (303, 264), (238, 542)),
    ((436, 615), (739, 380), (925, 792)),
)
NUM_CLASSES = 1  # person


def initial_det_bias(num_anchors, stride):
    """Official box-conv bias init: priors of ~8 people per 640x640 image
    for objectness and 0.6 for the (single) class, per anchor."""
    obj = math.log(8 / (640 / stride) ** 2)
    cls = math.log(0.6 / (NUM_CLASSES - 0.99))
    return [0.0, 0.0, 0.0, 0.0, obj, cls] * num_anchors


@kerapose_export("kerapose.models.YOLOPoseEstimator")
class YOLOPoseEstimator(PoseEstimator):
    """YOLO-Pose: single-stage person boxes and keypoints, one pass.

    `call` returns the raw head output, a list of four tensors (one per
    level P3..P6, strides 8..64), level l of shape (B, h_l, w_l, A, F) with
    A = 3 anchors and F = 6 + 3K fields in the official order
    [tx, ty, tw, th, obj, cls, (kx, ky, kconf) x K], all logits.
    `decode_levels` turns them into pixels; `predict` runs the decoder
    (`kerapose.codecs.YOLOPoseDecoder`: decode, score threshold, NMS) and
    returns a dict of `boxes` (B, D, 4), `scores` (B, D), `keypoints`
    (B, D, K, 2), `keypoint_scores` (B, D, K) and `num_detections` (B,).

    Train with `fit` on images in [0, 1] RGB and a targets dict (`boxes`
    (B, P, 4), `keypoints` (B, P, K, 3), `valid` (B, P)); the loss is
    `kerapose.losses.YOLOPoseLoss`, built from the anchors and strides.

    Args:
        backbone: `kerapose.models.YOLOPoseBackbone`.
        num_keypoints: int. Defaults to `17` (COCO).
        anchors: `None` (the official P6 anchors) or 4 lists (P3..P6) of
            (w, h) pairs in input pixels, the same count per level.
        decoder: `None` (a default `YOLOPoseDecoder`) or a decoder object
            called on the raw levels.
        depthwise_keypoint_head: bool. The official `dw_conv_kpt` head (six
            depthwise 3x3 and five 1x1 conv units before the keypoint conv),
            as the published s6 and m6 checkpoints use. `False` gives a
            single 1x1 conv (TI-lite). Defaults to `True`.
        sigmas: per-keypoint OKS sigmas for the loss (the keypoint spec's
            `sigmas`); `None` is COCO's and needs 17 keypoints.
        dtype: `None`, str or `keras.DTypePolicy` of the heads.

    Example:
    ```python
    model = kerapose.zoo.load("test_yolo_pose")
    raw = model(np.zeros((1, 128, 128, 3), "float32"))
    [tuple(r.shape) for r in raw][0]  # (1, 16, 16, 3, 57)
    ```
    """

    task = "single_stage"

    def __init__(
        self,
        backbone,
        num_keypoints=17,
        anchors=None,
        decoder=None,
        depthwise_keypoint_head=True,
        sigmas=None,
        dtype=None,
        **kwargs,
    ):
        if (
            isinstance(num_keypoints, bool)
            or not isinstance(num_keypoints, int)
            or num_keypoints <= 0
        ):
            raise ValueError(
                "`num_keypoints` must be a positive int (17 for COCO). "
                f"Received: {num_keypoints!r}"
            )
        anchors = check_anchors(
            YOLO_POSE_ANCHORS if anchors is None else anchors
        )
        features = getattr(backbone, "pyramid_outputs", {})
        if sorted(features) != sorted(LEVELS):
            raise ValueError(
                "YOLOPoseEstimator needs a backbone with pyramid outputs "
                f"{LEVELS} (a YOLOPoseBackbone). Received "
                f"{type(backbone).__name__} with {sorted(features)}."
            )
        image_shape = tuple(backbone.input_shape[1:])
        num_anchors = len(anchors[0])

        # === Functional Model ===
        inputs = layers.Input(shape=image_shape, name="images")
        features = backbone(inputs)
        raw_levels = [
            YOLOPoseLevelHead(
                num_keypoints,
                num_anchors=num_anchors,
                num_classes=NUM_CLASSES,
                depthwise_head=depthwise_keypoint_head,
                det_bias=initial_det_bias(num_anchors, stride),
                dtype=dtype,
                name=f"head_{level.lower()}",
            )(features[level])
            for level, stride in zip(LEVELS, STRIDES)
        ]
        super().__init__(inputs=inputs, outputs=raw_levels, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.num_keypoints = num_keypoints
        self.anchors = anchors
        self.strides = list(STRIDES)
        self.depthwise_keypoint_head = bool(depthwise_keypoint_head)
        self._decoder = decoder
        self._loss_fn = None
        # OKS sigmas of the loss; `None` means COCO's (17 keypoints only).
        self.sigmas = None if sigmas is None else [float(v) for v in sigmas]
        if self.sigmas is not None and len(self.sigmas) != num_keypoints:
            raise ValueError(
                f"`sigmas` has {len(self.sigmas)} values for {num_keypoints} "
                "keypoints; pass one per keypoint (the keypoint spec's "
                "`sigmas`)."
            )

    @property
    def head_prefixes(self):
        # Only the keypoint output convs depend on the keypoint count.
        return tuple(f"head_{level.lower()}/kpt_out/" for level in LEVELS)

    @property
    def decoder(self):
        """The post-processing object `predict` applies to the raw levels."""
        if self._decoder is None:
            from kerapose.codecs.yolo_pose_decoder import YOLOPoseDecoder

            self._decoder = YOLOPoseDecoder(
                anchors=self.anchors,
                strides=self.strides,
                num_keypoints=self.num_keypoints,
            )
        return self._decoder

    @property
    def loss_fn(self):
        """The `YOLOPoseLoss` that `compute_loss` calls (built on first use)."""
        if self._loss_fn is None:
            from kerapose.losses.yolo_pose_loss import YOLOPoseLoss

            self._loss_fn = YOLOPoseLoss(
                anchors=self.anchors,
                strides=self.strides,
                num_keypoints=self.num_keypoints,
                sigmas=self.sigmas,
            )
        return self._loss_fn

    def __setattr__(self, name, value):
        # `model.loss_fn = ...` replaces the loss. Not a property setter: the
        # TensorFlow backend's tracking reads an attribute before setting
        # it, which would build the default loss first.
        if name == "loss_fn":
            name = "_loss_fn"
        super().__setattr__(name, value)

    def default_loss(self):
        # The loss is `loss_fn`, called by `compute_loss` on the targets
        # dict; Keras' compiled loss is not used.
        return None

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if not isinstance(y, dict):
            raise ValueError(
                "YOLOPoseEstimator trains on a targets dict with 'boxes' (B, "
                "P, 4), 'keypoints' (B, P, K, 3) and 'valid' (B, P). "
                f"Received y of type {type(y).__name__}."
            )
        loss = self.loss_fn(y, y_pred)
        if self.losses:
            loss = loss + keras.ops.sum(self.losses)
        return loss

    def predict_step(self, *args):
        outputs = super().predict_step(*args)
        # The JAX trainer returns (outputs, non_trainable_variables).
        if keras.backend.backend() == "jax":
            return self.decoder(outputs[0]), outputs[1]
        return self.decoder(outputs)

    def get_config(self):
        config = super().get_config()
        decoder = self._decoder
        config.update(
            {
                "backbone": keras.layers.serialize(self.backbone),
                "num_keypoints": self.num_keypoints,
                "anchors": [[list(a) for a in level] for level in self.anchors],
                "decoder": None
                if decoder is None
                else keras.saving.serialize_keras_object(decoder),
                "depthwise_keypoint_head": self.depthwise_keypoint_head,
                "sigmas": self.sigmas,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "decoder"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def check_anchors(anchors):
    """Validates anchors: 4 levels of (w, h) pairs, the same count each.

    Returns:
        list of 4 lists of [w, h] floats.
    """
    try:
        levels = [[[float(v) for v in pair] for pair in lv] for lv in anchors]
    except (TypeError, ValueError):
        levels = None
    ok = (
        levels is not None
        and len(levels) == len(LEVELS)
        and all(len(p) == 2 and min(p) > 0 for lv in levels for p in lv)
        and len({len(lv) for lv in levels}) == 1
        and len(levels[0]) > 0
    )
    if not ok:
        raise ValueError(
            "`anchors` must be 4 lists (P3..P6) of the same number of "
            "positive (w, h) pairs in input pixels, e.g. the official "
            f"{[list(map(list, lv)) for lv in YOLO_POSE_ANCHORS]}. Received: "
            f"{anchors!r}"
        )
    return levels
