"""Quantization-aware training (QAT) of Keras 3 models, `keras.ops` only.

`quantize_aware(model, calibration_images)` makes a built model simulate
int8 inference in its forward pass, in place, on any backend:

* every `ConvBNAct` folds its batch norm into the convolution (with the
  moving statistics, which stay frozen) and fake-quantizes the folded
  kernel per output channel, then fake-quantizes its output: exactly the
  int8 convolution the TFLite converter produces from it;
* every other `Conv2D`, `DepthwiseConv2D`, `Conv2DTranspose` and `Dense`
  fake-quantizes its kernel per output channel;
* the model input and the output are fake-quantized too.

Then `model.fit` fine-tunes the weights against that int8 noise, and
`kerapose.export.export_tflite(model, path, "int8")` writes a full-integer
file whose int8 ranges come from the learnt fake-quant ranges (the few
tensors without one, e.g. residual sums, are calibrated as in PTQ).

The nested layers of kerapose models are not rebuilt: each layer keeps
its weights and names (weight files still load) and gets a QAT `call`
plus `ActivationQuantizer` sublayers. `.keras` saving of a QAT model is
not supported; save weights, and re-apply `quantize_aware` before
loading them.
"""

from __future__ import annotations

import contextlib
import types

import keras
from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export
from kerapose.layers.conv_bn_act import ConvBNAct
from kerapose.quantization.fake_quant import ActivationQuantizer
from kerapose.quantization.fake_quant import fake_quant_depthwise_kernel
from kerapose.quantization.fake_quant import fake_quant_kernel


def _add_quantizer(layer, attribute, scope=None):
    """Attaches a new ActivationQuantizer to an already built layer.

    Its variables are created under `scope` (the layer's path), so their
    paths are unique, e.g. `stem/qat_output/range_min`.
    """
    quantizer = ActivationQuantizer(name=attribute, dtype=layer.dtype_policy)
    locked = layer._tracker.locked
    layer._tracker.unlock()  # built layers refuse new state otherwise
    setattr(layer, attribute, quantizer)
    if locked:
        layer._tracker.lock()
    with contextlib.ExitStack() as stack:
        for part in (scope or "").split("/"):
            if part:
                stack.enter_context(keras.name_scope(part, deduplicate=False))
        quantizer.build(())
    return quantizer


def _conv_bn_act_call(self, inputs, training=None):
    """ConvBNAct with batch norm folded into a fake-quantized kernel."""
    x = inputs
    if self._pad:
        p = self._pad
        x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
    conv = self.conv
    if self.separable:
        depthwise = conv.depthwise
        x = ops.depthwise_conv(
            x,
            fake_quant_depthwise_kernel(depthwise.kernel),
            strides=depthwise.strides,
            padding=depthwise.padding,
            dilation_rate=depthwise.dilation_rate,
        )
        x = self.qat_inner(ops.relu(x), training=training)
        conv = conv.pointwise
    bn = self.bn
    scale = ops.rsqrt(bn.moving_variance + bn.epsilon)
    if getattr(bn, "gamma", None) is not None:
        scale = scale * bn.gamma
    bias = -bn.moving_mean * scale
    if getattr(bn, "beta", None) is not None:
        bias = bias + bn.beta
    if getattr(conv, "bias", None) is not None:
        bias = bias + conv.bias * scale
    kernel = fake_quant_kernel(conv.kernel * scale, -1)
    x = conv.convolution_op(x, kernel) + bias
    if self.act is not None:
        x = self.act(x)
    return self.qat_output(x, training=training)


def _conv_call(self, inputs):
    """Conv2D with a per-channel fake-quantized kernel."""
    return _bias_act(
        self, self.convolution_op(inputs, fake_quant_kernel(self.kernel, -1))
    )


def _depthwise_call(self, inputs):
    x = ops.depthwise_conv(
        inputs,
        fake_quant_depthwise_kernel(self.kernel),
        strides=self.strides,
        padding=self.padding,
        dilation_rate=self.dilation_rate,
        data_format=self.data_format,
    )
    return _bias_act(self, x)


def _conv_transpose_call(self, inputs):
    x = ops.conv_transpose(
        inputs,
        # One range per kernel: TensorFlow transposes this kernel before
        # the op, and the converter cannot carry a per-channel axis
        # through that transpose.
        fake_quant_kernel(self.kernel, None),
        strides=list(self.strides),
        padding=self.padding,
        output_padding=self.output_padding,
        dilation_rate=self.dilation_rate,
        data_format=self.data_format,
    )
    return _bias_act(self, x)


def _dense_call(self, inputs, training=None):
    return _bias_act(self, ops.matmul(inputs, fake_quant_kernel(self.kernel)))


def _bias_act(layer, x):
    if getattr(layer, "bias", None) is not None:
        x = x + layer.bias
    if layer.activation is not None:
        x = layer.activation(x)
    return x


# Most specific first: Conv2DTranspose and DepthwiseConv2D are not Conv2D
# subclasses, SeparableConv2D is left alone (kerapose uses SeparableConv).
_KERNEL_CALLS = (
    (layers.Conv2DTranspose, _conv_transpose_call),
    (layers.DepthwiseConv2D, _depthwise_call),
    (layers.Conv2D, _conv_call),
    (layers.Dense, _dense_call),
)


def _model_call(self, inputs, training=None, **kwargs):
    x = self.qat_input(inputs, training=training)
    outputs = self._float_call(x, training=training, **kwargs)
    return self.qat_output(outputs, training=training)


def _check_quantizable(model):
    if not model.built or not getattr(model, "inputs", None):
        raise ValueError(
            f"Model '{model.name}' has not been built, so it cannot be "
            "prepared for quantization. Build it first (call it on a batch, "
            "or give it an `Input`), or load it with `kerapose.zoo.load`."
        )
    if getattr(model, "_qat", False):
        raise ValueError(f"Model '{model.name}' is already quantize-aware.")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            "quantize_aware supports models with one input and one output "
            f"tensor; '{model.name}' has {len(model.inputs)} and "
            f"{len(model.outputs)}."
        )


@kerapose_export("kerapose.quantization.quantize_aware")
def quantize_aware(model, calibration_images, batch_size: int = 8):
    """Prepares a built model for quantization-aware training, in place.

    Args:
        model: a built Keras model with one image input and one output,
            e.g. a `kerapose.models.TopDownPoseEstimator`.
        calibration_images: (N, H, W, 3) array, or an iterable of batches
            (`images` or tuples starting with `images`, e.g. a training
            `tf.data.Dataset`; the first 8 batches are used). Sets the
            initial activation ranges.
        batch_size: int. Batch size for an array. Defaults to `8`.

    Returns:
        The same model, now training and predicting with int8 simulation.
        Recompile it before `fit`.

    Raises:
        ValueError: the model is not built, already prepared, or has
            several inputs or outputs.
    """
    _check_quantizable(model)
    patched = 0
    folded = set()
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, ConvBNAct):
            _add_quantizer(layer, "qat_output", layer.path)
            if layer.separable:
                _add_quantizer(layer, "qat_inner", layer.path)
            layer.call = types.MethodType(_conv_bn_act_call, layer)
            folded.update(id(sub) for sub in layer._flatten_layers())
            patched += 1
    for layer in model._flatten_layers(include_self=False):
        if id(layer) in folded:
            continue
        for cls, call in _KERNEL_CALLS:
            if isinstance(layer, cls):
                layer.call = types.MethodType(call, layer)
                patched += 1
                break
    if not patched:
        raise ValueError(
            f"Model '{model.name}' has no convolution or dense layer to "
            "quantize."
        )
    _add_quantizer(model, "qat_input")
    _add_quantizer(model, "qat_output")
    model._float_call = model.call
    model.call = types.MethodType(_model_call, model)
    model._qat = True
    calibrate(model, calibration_images, batch_size)
    return model


def _quantizers(model):
    return [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, ActivationQuantizer)
    ]


def calibrate(model, images, batch_size=8, max_batches=8):
    """Sets every activation range to the min / max seen on `images`."""
    quantizers = _quantizers(model)
    for q in quantizers:
        q.range_min.assign(0.0)
        q.range_max.assign(0.0)
        q.calibrating = True
    try:
        seen = 0
        for batch in _batches(images, batch_size):
            # Eager on purpose: the Python flag above must be seen.
            model(batch, training=False)
            seen += 1
            if seen >= max_batches:
                break
    finally:
        for q in quantizers:
            q.calibrating = False
    if not seen:
        raise ValueError("`calibration_images` holds no images.")


def _batches(images, batch_size):
    if hasattr(images, "shape") and len(images.shape) == 4:
        for start in range(0, images.shape[0], batch_size):
            yield ops.convert_to_tensor(images[start : start + batch_size])
        return
    for element in images:
        x = element[0] if isinstance(element, (tuple, list)) else element
        yield ops.convert_to_tensor(keras.ops.convert_to_numpy(x))
