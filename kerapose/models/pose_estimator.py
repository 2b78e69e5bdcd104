import keras

from kerapose.api_export import kerapose_export
from kerapose.models.input_checks import check_image_batch


@kerapose_export("kerapose.models.PoseEstimator")
class PoseEstimator(keras.Model):
    """Base class for pose estimators: a backbone plus head, codec and loss.

    Functional subclasses: the graph is built in `__init__`, the constructor
    arguments are the config, and `compile()` picks the family's recipe
    defaults when given `"auto"`.

    Subclasses set `self.backbone` and `head_prefixes` (variable-path
    prefixes of the layers that depend on the keypoint count, so weights
    can be loaded without them when `num_keypoints` changes).
    """

    head_prefixes = ()

    def __call__(self, inputs, *args, **kwargs):
        check_image_batch(
            inputs,
            type(self).__name__,
            divisor=getattr(self.backbone, "input_divisor", 1),
        )
        return super().__call__(inputs, *args, **kwargs)

    def default_optimizer(self):
        return keras.optimizers.Adam(1e-3)

    def default_loss(self):
        # Each estimator family names its recipe's loss; a bare base class
        # has none, so "auto" cannot be resolved.
        raise ValueError(
            f"{type(self).__name__} has no default loss; pass `loss=` to "
            "compile()."
        )

    def compile(self, optimizer="auto", loss="auto", metrics=None, **kwargs):
        """Configures training; `"auto"` picks the family's defaults.

        Args:
            optimizer: `"auto"` (Adam, lr 1e-3) or any Keras optimizer.
            loss: `"auto"` (the family's loss) or any Keras loss.
            metrics: optional Keras metrics.
            **kwargs: passed to `keras.Model.compile`.
        """
        if optimizer == "auto":
            optimizer = self.default_optimizer()
        if loss == "auto":
            loss = self.default_loss()
        super().compile(
            optimizer=optimizer, loss=loss, metrics=metrics, **kwargs
        )

    def get_config(self):
        # Not chained to the functional config: the kwargs are the config.
        return {"name": self.name, "trainable": self.trainable}
