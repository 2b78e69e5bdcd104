import keras

from kerapose.api_export import kerapose_export
from kerapose.models.input_checks import check_image_batch


@kerapose_export("kerapose.models.Backbone")
class Backbone(keras.Model):
    """Base class for kerapose backbones (functional subclasses).

    Subclasses build their graph in `__init__` and store their constructor
    arguments, so `get_config()` is the architecture spec and
    `from_config(get_config())` rebuilds the same class.

    Attributes:
        pyramid_outputs: dict. `"Pn"` -> symbolic feature map of stride 2^n.
        input_divisor: int. Input height and width must be multiples of it.
    """

    input_divisor = 1

    def __init__(self, *args, dtype=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._pyramid_outputs = {}
        # Layers get the policy directly; kept here for `get_config()`.
        self._dtype_arg = dtype

    @property
    def pyramid_outputs(self):
        return self._pyramid_outputs

    @pyramid_outputs.setter
    def pyramid_outputs(self, value):
        if not isinstance(value, dict) or not all(
            k.startswith("P") and k[1:].isdigit() for k in value
        ):
            raise TypeError(
                "`pyramid_outputs` must be a dict of 'Pn' -> tensor. "
                f"Received: {value}"
            )
        self._pyramid_outputs = value

    def __call__(self, inputs, *args, **kwargs):
        check_image_batch(
            inputs, type(self).__name__, divisor=self.input_divisor
        )
        return super().__call__(inputs, *args, **kwargs)

    def get_config(self):
        # Not chained to the functional config: the kwargs are the config.
        config = {"name": self.name, "trainable": self.trainable}
        if self._dtype_arg is not None:
            config["dtype"] = keras.dtype_policies.serialize(
                keras.dtype_policies.get(self._dtype_arg)
            )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "dtype" in config and isinstance(config["dtype"], dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
