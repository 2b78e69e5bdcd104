"""TFLite export of pose estimators: float32, fp16, dynamic range, int8.

Shapes: K keypoints, (H, W) input, (h, w) heatmap.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from kerapose.api_export import kerapose_export
from kerapose.export.backend import check_tensorflow_backend
from kerapose.export.decode_graph import decode_in_graph
from kerapose.export.flatbuffer_ops import non_builtin_operators
from kerapose.export.representative import calibration_images

QUANTIZATIONS = (None, "fp16", "dynamic", "int8")


class UnsupportedOpsError(ValueError):
    """The model needs operators that are not TFLite builtins."""


def static_input_shape(model, input_shape=None) -> tuple:
    """(H, W, C) of the exported graph: the model's, or `input_shape`."""
    if not model.built or not getattr(model, "inputs", None):
        raise ValueError(
            f"Model '{model.name}' has not been built: it has no input "
            "shape to export or quantize. Build it first (call it on a "
            "batch, or give its first layer an `Input`), or load it with "
            "`kerapose.zoo.load`."
        )
    model_shape = tuple(model.input_shape[1:])
    shape = tuple(input_shape) if input_shape is not None else model_shape
    if any(s is None for s in shape):
        codec = getattr(model, "codec", None)
        if codec is None or input_shape is not None:
            raise ValueError(
                f"The export needs a static input shape; got {shape}. Pass "
                "`input_shape=(H, W, 3)`."
            )
        shape = (*codec.input_size, shape[-1])
    if len(shape) != len(model_shape) or any(
        m is not None and m != s for m, s in zip(model_shape, shape)
    ):
        raise ValueError(
            f"`input_shape` {shape} does not fit the model's input "
            f"{model_shape}."
        )
    return tuple(int(s) for s in shape)


def _inference_graph(model, include_decode):
    """The function that is exported: heatmaps, or decoded keypoints."""
    if getattr(model, "task", None) == "single_stage":
        from kerapose.export.yolo_pose import inference_graph

        return inference_graph(model, include_decode)
    if not include_decode:
        return lambda images: model(images, training=False)
    if not hasattr(model, "codec"):
        raise ValueError(
            "`include_decode=True` needs a model with a `codec` (a top-down "
            f"estimator); '{model.name}' has none."
        )

    def decoded(images):
        # One (1, K, 3) tensor keeps the output order unambiguous.
        outputs = model(images, training=False)
        if hasattr(model, "final_heatmaps"):  # multi-stage: the last unit
            outputs = model.final_heatmaps(outputs)
        return decode_in_graph(outputs, model.codec)

    return decoded


def _converter(fn, shape):
    spec = tf.TensorSpec((1, *shape), tf.float32, name="images")
    concrete = tf.function(fn).get_concrete_function(spec)
    # Frozen here rather than through the model as a trackable: that path
    # keeps the variables of plain functional models as VAR_HANDLE /
    # READ_VARIABLE ops (BN left unfolded) and breaks int8 calibration.
    # Loops (the YOLO-Pose NMS) stay functional WHILE ops: lowered to
    # Switch/Merge they cannot be frozen.
    frozen = convert_variables_to_constants_v2(
        concrete, lower_control_flow=False
    )
    return tf.lite.TFLiteConverter.from_concrete_functions(
        [frozen], tf.Module()
    )


def _configure(converter, quantization, calibration, progress=False):
    builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":

        def representative():
            # The converter runs the model on each image as it is yielded.
            bar = None
            if progress:
                bar = keras.utils.Progbar(len(calibration), unit_name="image")
            for i, image in enumerate(calibration):
                yield [image[None]]
                if bar is not None:
                    bar.update(i + 1)

        converter.representative_dataset = representative
        # Int8 everywhere it can be; the decode's integer index arithmetic
        # (argmax, gathers) stays in builtin int32/float kernels.
        builtins = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] + builtins
    converter.target_spec.supported_ops = builtins


@kerapose_export("kerapose.export.export_tflite")
def export_tflite(
    model,
    path: str | os.PathLike,
    quantization: str | None = None,
    representative_data=None,
    num_calibration_samples: int = 64,
    include_decode: bool = False,
    input_shape: tuple | None = None,
    progress: bool = False,
) -> Path:
    """Writes a batch-1 TFLite model of only builtin (mobile) operators.

    Outputs: without decode, heatmaps (1, h, w, K) float32; with
    `include_decode=True`, one (1, K, 3) float32 tensor of `(x, y, score)`
    per keypoint, `x, y` in pixels of the (H, W) input crop (the codec's
    argmax and sub-pixel refinement, in the graph). Inputs are (1, H, W, 3)
    float32 crops normalised like the training data, for every
    quantization (int8 models quantize and dequantize at their ends).

    Args:
        model: a built Keras model, e.g. a `TopDownPoseEstimator` (or one
            prepared with `kerapose.quantization.quantize_aware`).
        path: where to write the `.tflite` file.
        quantization: `None` (float32), `"fp16"` (float16 weights),
            `"dynamic"` (int8 weights, float activations) or `"int8"`
            (full integer, calibrated on `representative_data`).
        representative_data: int8 calibration images: a `tf.data.Dataset`
            (e.g. `build_top_down_dataset(..., training=False)`), an array
            (N, H, W, 3), or `None` for crops of the synthetic set.
        num_calibration_samples: int. Calibration images used. Defaults to
            `64`.
        include_decode: bool. Put the keypoint decode in the graph.
            Defaults to `False`.
        input_shape: `(H, W, 3)`. Needed only when the model's input shape
            is dynamic and it has no codec.
        progress: bool. Show a progress bar over the int8 calibration
            images. Defaults to `False`.

    Returns:
        The `Path` of the written file.

    Raises:
        RuntimeError: the Keras backend is not TensorFlow.
        ValueError: unknown `quantization`, unbuilt model, or calibration
            images of the wrong shape or dtype.
        UnsupportedOpsError: the graph needs non-builtin (Flex / custom)
            operators; the message names them.
    """
    check_tensorflow_backend()
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"`quantization` must be one of {QUANTIZATIONS}. Received: "
            f"{quantization!r}"
        )
    shape = static_input_shape(model, input_shape)
    single_stage = getattr(model, "task", None) == "single_stage"
    if single_stage and include_decode and quantization == "int8":
        raise ValueError(
            "quantization='int8' with include_decode=True is not available "
            "for single-stage (YOLO-Pose) models: the converter would "
            "quantize the box arithmetic and NMS. Export the raw output "
            "(include_decode=False) in int8 and run the decoder on the "
            "host, or put the decoder in a float32, fp16 or dynamic file."
        )
    calibration = None
    if quantization == "int8":
        images = calibration_images
        if single_stage:
            # Letterboxed whole images in [0, 1], not normalised crops.
            from kerapose.export.yolo_pose import calibration_images as images
        calibration = images(
            representative_data, shape, num_calibration_samples
        )
    elif representative_data is not None:
        raise ValueError(
            "`representative_data` is only used by quantization='int8'. "
            f"Received quantization={quantization!r}."
        )
    converter = _converter(_inference_graph(model, include_decode), shape)
    _configure(converter, quantization, calibration, progress)
    try:
        content = converter.convert()
    except Exception as e:  # the converter raises ConverterError and others
        raise UnsupportedOpsError(
            "TFLite conversion with builtin operators only failed; the "
            "model uses operations that mobile runtimes cannot run without "
            "the Flex (select TensorFlow ops) delegate. Replace them (e.g. "
            "bilinear or nearest resize instead of bicubic). Converter "
            f"message:\n{e}"
        ) from e
    flex = non_builtin_operators(content)
    if flex:
        raise UnsupportedOpsError(
            f"The converted model uses non-builtin operators {flex}; mobile "
            "runtimes cannot run them."
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path
