"""ONNX export of pose estimators, and its check in ONNX Runtime.

The file holds the graph the TFLite export traces (`tflite._inference_
graph`), with a dynamic batch dimension named `batch`:

* top-down (HRNet, OmniPose, RSN): `heatmaps` (batch, h, w, K) (RSN: its
  unit heatmaps, (batch, U, h, w, K)); with `include_decode=True` one
  `keypoints` tensor (batch, K, 3) of `(x, y, score)` in input pixels.
* bottom-up (HigherHRNet, Associative Embedding hourglass): the model's
  output list, `output_0`, `output_1`, ... (heatmaps and tag maps).
* single-stage (YOLO-Pose): the raw rows `raw_rows` (batch, R, F) of
  `kerapose.export.yolo_pose`. The in-graph NMS is not exported: the
  decoder needs a static row count, which a dynamic batch takes away.
  Decode the rows on the host (`raw_rows_to_levels` + `YOLOPoseDecoder`).

The converter is tf2onnx on a TensorFlow function, not Keras'
`model.export(format="onnx")`: Keras picks another converter per backend
(jax2onnx on JAX; torch.onnx on PyTorch, where only TorchScript keeps the
batch dynamic), so one model would give three files and three sets of
failures, and the top-down decode is TensorFlow code. On JAX or PyTorch the
model goes through a `.keras` file to a TensorFlow-backend subprocess
(`.keras` files move between backends unchanged): every backend writes
the same graph.

Shapes: N images, K keypoints, (H, W) input, (h, w) heatmap.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np

from kerapose.api_export import kerapose_export
from kerapose.cli_support import check_output_path
from kerapose.export.verify import TFLiteVerificationError
from kerapose.export.verify import finish_report
from kerapose.export.verify import keypoint_report
from kerapose.export.verify import threshold_failures

DEFAULT_OPSET = 17
RUNTIME = "ONNX Runtime"
INSTALL_HINT = "`pip install 'kerapose[onnx]'` (onnx, onnxruntime, tf2onnx)"


class ONNXVerificationError(TFLiteVerificationError):
    """The .onnx outputs are further from the Keras model than allowed.

    A `TFLiteVerificationError` too, so code that catches a failed export
    check catches both.
    """


def missing_onnx_packages(runtime=True) -> list:
    """The packages of the `onnx` extra that are not installed."""
    names = ["onnx", "tf2onnx"] + (["onnxruntime"] if runtime else [])
    return [n for n in names if importlib.util.find_spec(n) is None]


def _require(runtime):
    missing = missing_onnx_packages(runtime)
    if missing:
        raise ImportError(
            f"ONNX export needs {', '.join(missing)}: {INSTALL_HINT}."
        )


@kerapose_export("kerapose.export.export_onnx")
def export_onnx(
    model,
    path: str | os.PathLike,
    include_decode: bool = False,
    input_shape: tuple | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Writes a float32 ONNX model with a dynamic batch dimension.

    Inputs: `images` (batch, H, W, 3) float32, prepared as for the Keras
    model (normalised crops; YOLO-Pose: letterboxed RGB in [0, 1]).
    Outputs: see the module docstring.

    Args:
        model: a built Keras pose model (any family, any backend).
        path: where to write the `.onnx` file; its folder is created.
        include_decode: bool. Put the codec's keypoint decode in the graph
            (top-down models only). Defaults to `False`.
        input_shape: `(H, W, 3)`. Needed only when the model's input shape
            is dynamic and it has no codec.
        opset: int. ONNX opset. Defaults to `17`.

    Returns:
        The `Path` of the written file.

    Raises:
        ImportError: onnx or tf2onnx is not installed.
        ValueError: a bad `path` (checked first), unbuilt model, or
            `include_decode` for a model without a top-down decode.
        RuntimeError: the conversion failed; the message has the
            converter's.
    """
    path = check_output_path(path, (".onnx",), "export_onnx: path")
    _require(runtime=False)
    from kerapose.export.tflite import static_input_shape

    shape = static_input_shape(model, input_shape)
    task = getattr(model, "task", None)
    if include_decode and (task != "top_down" or not hasattr(model, "codec")):
        raise ValueError(
            "`include_decode=True` is available for top-down models (with a "
            f"codec); '{model.name}' is a {task or 'plain'} model. Export "
            "its raw outputs and decode them on the host (YOLO-Pose: "
            "`kerapose.export.yolo_pose.raw_rows_to_levels` and the model's "
            "`decoder`)."
        )
    if keras.backend.backend() != "tensorflow":
        return _export_in_tensorflow(model, path, include_decode, shape, opset)
    _convert(model, path, include_decode, shape, opset)
    return path


def _convert(model, path, include_decode, shape, opset):
    import tensorflow as tf
    import tf2onnx

    from kerapose.export.tflite import _inference_graph

    _patch_tf2onnx_for_numpy2()
    spec = tf.TensorSpec((None, *shape), tf.float32, name="images")
    fn = tf.function(_inference_graph(model, include_decode))
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    try:
        proto, _ = tf2onnx.convert.from_function(
            fn, input_signature=[spec], opset=opset
        )
    except Exception as e:  # tf2onnx raises many kinds
        raise RuntimeError(
            f"ONNX conversion of '{model.name}' failed (tf2onnx, opset "
            f"{opset}): {e}"
        ) from e
    names = _output_names(model, include_decode, len(proto.graph.output))
    _name_outputs_and_batch(proto, names)
    import onnx

    onnx.save(proto, str(path))


def _patch_tf2onnx_for_numpy2():
    # tf2onnx 1.17 folds some constants with NumPy 1 names; Keras (pinned
    # to 3.15 by kerapose) ships the fix it applies before its own tf2onnx
    # export. Without it, only those foldings are skipped.
    try:
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:
        return
    patch_tf2onnx()


def _output_names(model, include_decode, count):
    if include_decode:
        return ["keypoints"]
    task = getattr(model, "task", None)
    if task == "single_stage":
        return ["raw_rows"]
    if task == "top_down" and count == 1:
        return ["heatmaps"]
    return [f"output_{i}" for i in range(count)]


def _name_outputs_and_batch(proto, names):
    """Readable output names, and `batch` for every leading dimension."""
    renames = {o.name: n for o, n in zip(proto.graph.output, names)}
    for node in proto.graph.node:
        node.output[:] = [renames.get(x, x) for x in node.output]
        node.input[:] = [renames.get(x, x) for x in node.input]
    for value in (*proto.graph.input, *proto.graph.output):
        value.name = renames.get(value.name, value.name)
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"


_CHILD = """
import sys
import keras
import kerapose.models  # registers kerapose's classes
from kerapose.export.onnx import _convert
saved, path, decode, opset, *shape = sys.argv[1:]
model = keras.models.load_model(saved, compile=False)
_convert(model, path, decode == "1", tuple(map(int, shape)), int(opset))
"""


def _export_in_tensorflow(model, path, include_decode, shape, opset):
    """Converts in a TensorFlow-backend process, via a `.keras` file."""
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "model.keras"
        model.save(saved)
        args = [str(saved), str(path), str(int(include_decode)), str(opset)]
        env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # This kerapose, installed or not.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, env.get("PYTHONPATH")) if p
        )
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, *args, *map(str, shape)],
            capture_output=True,
            text=True,
            env=env,
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"ONNX conversion of '{model.name}' in a TensorFlow-backend "
            f"process failed (the model was saved as .keras and reloaded "
            f"there). Its error:\n{result.stderr[-3000:]}"
        )
    return path


class ONNXRuntimeModel:
    """A .onnx file in an ONNX Runtime CPU session.

    Args:
        path: the `.onnx` file.
        num_threads: int. Intra-op threads. Defaults to `1`.

    Raises:
        ImportError: onnxruntime is not installed.
        FileNotFoundError: no such file.
        ValueError: the file is not a loadable ONNX model.
    """

    def __init__(self, path: str | os.PathLike, num_threads: int = 1):
        try:
            import onnxruntime
        except ImportError as e:
            raise ImportError(
                f"Running .onnx files needs onnxruntime: {INSTALL_HINT}."
            ) from e
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"No .onnx file at {self.path}")
        # Keeps the converter's deprecated-attribute notices off stderr.
        onnxruntime.set_default_logger_severity(3)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own kinds
            raise ValueError(
                f"{self.path} is not a loadable ONNX model ({e}). Export it "
                "again."
            ) from e
        self.input = self.session.get_inputs()[0]

    @property
    def input_shape(self) -> tuple:
        """(batch, H, W, C); `batch` is a str for a dynamic batch."""
        return tuple(self.input.shape)

    def __call__(self, images: np.ndarray) -> list:
        """Runs one batch (N, H, W, C); returns every output, (N, ...)."""
        x = np.asarray(images, np.float32)
        return self.session.run(None, {self.input.name: x})


def _batches(num_images):
    """Batch 1 first, then batches of 2: both sizes run in the file."""
    starts = [0, *range(1, num_images, 2)]
    return [(s, min(s + (1 if s == 0 else 2), num_images)) for s in starts]


def _run_batches(fn, images, progress):
    bar = None
    if progress:
        bar = keras.utils.Progbar(len(images), unit_name="image")
    outputs = []
    for start, stop in _batches(len(images)):
        outputs.append(fn(images[start:stop]))
        if bar is not None:
            bar.update(stop)
    return [np.concatenate(parts) for parts in zip(*outputs)]


def _keras_outputs(model, images, batch_size=8):
    """The model's outputs, as a list; few batch shapes, as eager JAX and
    PyTorch run each new shape slowly."""
    outputs = []
    for start in range(0, len(images), batch_size):
        out = model(images[start : start + batch_size], training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        outputs.append([keras.ops.convert_to_numpy(o) for o in out])
    return [np.concatenate(parts) for parts in zip(*outputs)]


def _heatmaps(model, outputs):
    """The (N, h, w, K) maps the keypoints are read from."""
    maps = outputs[0]
    if maps.ndim == 5:  # RSN: the last unit's, as its decode
        maps = maps[:, -1]
    return maps[..., : model.num_keypoints]


def _decoder(model):
    """Heatmaps (N, h, w, K) -> (N, K, 3): the codec's decode, else the
    NumPy reference (a bottom-up model: each channel's peak)."""
    from kerapose.export.verify import _decoder as heatmap_decoder

    if getattr(model, "task", None) == "top_down":
        return heatmap_decoder(model, None)
    from kerapose.export.numpy_reference import decode_heatmaps

    return lambda maps: decode_heatmaps(maps, model.input_shape[1:3])


@kerapose_export("kerapose.export.verify_onnx")
def verify_onnx(
    path: str | os.PathLike,
    model,
    images=None,
    num_images: int = 16,
    max_mean_keypoint_px: float | None = 1.0,
    max_heatmap_diff: float | None = None,
    score_threshold: float = 0.0,
    raise_on_failure: bool = True,
    num_threads: int = 1,
    progress: bool = False,
):
    """Runs `path` in ONNX Runtime and compares it with `model`.

    The file runs the first image alone and the others two at a time, so
    a file without a working dynamic batch fails here. The report is
    `verify_tflite`'s, with its thresholds:

    * top-down: heatmaps (RSN: every unit's) element-wise, keypoints
      decoded by the codec from both (a file with the decode in its graph
      brings its own) and compared in input pixels;
    * bottom-up: every output (heatmaps and tag maps) element-wise; the
      keypoint displacement is that of each heatmap channel's peak (the
      NumPy reference decode of the first output), not of grouped people;
    * YOLO-Pose: the raw rows element-wise, then people decoded and
      matched as in `verify_tflite` (a `SingleStageVerificationReport`,
      `max_heatmap_diff` bounding the raw logit difference).

    Args:
        path: the `.onnx` file written by `export_onnx`.
        model: the Keras model it was exported from (any backend).
        images: model inputs (N, H, W, 3), a `tf.data.Dataset` of them, or
            `None` for synthetic ones (person crops; YOLO-Pose: scenes).
        num_images: int. Images compared. Defaults to `16`.
        max_mean_keypoint_px: float or `None`. Fail when the mean keypoint
            displacement is larger. Defaults to `1.0`.
        max_heatmap_diff: float or `None`. Fail when the largest output
            difference is larger. Defaults to `None` (not checked).
        score_threshold: float. Count only keypoints (YOLO-Pose: people)
            the Keras model scores above this. Defaults to `0.0`.
        raise_on_failure: bool. Raise rather than return a failed report.
            Defaults to `True`.
        num_threads: int. ONNX Runtime threads. Defaults to `1`.
        progress: bool. Show a progress bar over the file's runs. Defaults
            to `False`.

    Returns:
        A `VerificationReport` (YOLO-Pose: `SingleStageVerificationReport`)
        with `runtime="ONNX Runtime"`.

    Raises:
        ImportError: onnxruntime is not installed.
        FileNotFoundError, ValueError: missing or corrupt file, or one not
            exported from `model`.
        ONNXVerificationError: a threshold was exceeded (and
            `raise_on_failure`); its `report` attribute has the figures.
    """
    from kerapose.export.tflite import static_input_shape

    runner = ONNXRuntimeModel(path, num_threads=num_threads)
    shape = static_input_shape(model)
    if tuple(runner.input_shape[1:]) != shape:
        raise ValueError(
            f"{path} takes inputs of shape {runner.input_shape}, the model "
            f"(batch, {', '.join(map(str, shape))}): not exported from it."
        )
    single_stage = getattr(model, "task", None) == "single_stage"
    if single_stage:
        from kerapose.export import yolo_pose

        images = yolo_pose.calibration_images(images, shape, num_images)
    else:
        from kerapose.export.representative import calibration_images

        images = calibration_images(images, shape, num_images)
    out = _run_batches(runner, images, progress)
    if single_stage:
        return yolo_pose.compare_single_stage(
            path,
            model,
            images,
            out[0],
            max_mean_keypoint_px,
            max_heatmap_diff,
            min_matched_fraction=0.5,
            score_threshold=score_threshold,
            raise_on_failure=raise_on_failure,
            runtime=RUNTIME,
            error=ONNXVerificationError,
        )
    expected_out = _keras_outputs(model, images)
    keras_maps = _heatmaps(model, expected_out)
    decode = _decoder(model)
    expected = decode(keras_maps)
    max_diff = mean_diff = None
    if len(out) == 1 and out[0].shape == expected.shape:
        actual = out[0]  # the decode is in the file
    else:
        shapes = [o.shape[1:] for o in out]
        if shapes != [o.shape[1:] for o in expected_out]:
            raise ValueError(
                f"{path} outputs {shapes}, the model "
                f"{[o.shape[1:] for o in expected_out]}: not exported from "
                "it."
            )
        diffs = [np.abs(a - b) for a, b in zip(out, expected_out)]
        max_diff = float(max(d.max() for d in diffs))
        mean_diff = float(np.concatenate([d.ravel() for d in diffs]).mean())
        actual = decode(_heatmaps(model, out))
    report = keypoint_report(
        expected,
        actual,
        keras_maps,
        max_diff,
        mean_diff,
        score_threshold,
        runtime=RUNTIME,
    )
    failures = threshold_failures(
        report, max_mean_keypoint_px, max_heatmap_diff, max_diff, "output"
    )
    return finish_report(
        report, failures, path, raise_on_failure, ONNXVerificationError
    )
