import warnings

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

    Args:
        sync_batchnorm: bool. Under a `tf.distribute` strategy with several
            replicas, BatchNorm normalises with the moments of the global
            batch (all-reduced) instead of each replica's share, and every
            replica keeps the same moving statistics. TensorFlow backend
            only; saved in the config. Defaults to `False`.
    """

    head_prefixes = ()
    # How the estimator meets people: "top_down" (one crop per person box),
    # "bottom_up" (whole image, grouping) or "single_stage" (whole image,
    # one detection per person). Inference dispatches on it.
    task = "top_down"

    def __init__(self, *args, sync_batchnorm=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.sync_batchnorm = sync_batchnorm

    @property
    def sync_batchnorm(self):
        """Whether BatchNorm all-reduces its moments across replicas."""
        return self._sync_batchnorm

    @sync_batchnorm.setter
    def sync_batchnorm(self, value):
        if not isinstance(value, (bool, int)) or value not in (0, 1):
            raise ValueError(
                f"`sync_batchnorm` must be True or False, got {value!r}."
            )
        value = bool(value)
        self._sync_batchnorm = value
        if keras.backend.backend() != "tensorflow":
            if value:
                # Kept in the config, so that a model saved on TensorFlow
                # loads anywhere; it has nothing to do here.
                warnings.warn(
                    "sync_batchnorm=True has no effect on the "
                    f"{keras.backend.backend()} backend: it is for "
                    "tf.distribute. keras.distribution.DataParallel on JAX "
                    "already normalises over the global batch."
                )
            return
        for layer in self._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = value

    def _check_inputs(self, inputs):
        check_image_batch(
            inputs,
            type(self).__name__,
            divisor=getattr(self.backbone, "input_divisor", 1),
            size=self.input_shape[1:3],
        )

    def __call__(self, inputs, *args, **kwargs):
        self._check_inputs(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        # Arrays are checked before Keras' predict loop: on JAX, an error
        # inside it leaves the model's variables unusable.
        if isinstance(x, dict) or hasattr(x, "shape"):
            self._check_inputs(x)
        return super().predict(x, *args, **kwargs)

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
        return {
            "name": self.name,
            "trainable": self.trainable,
            "sync_batchnorm": self.sync_batchnorm,
        }
