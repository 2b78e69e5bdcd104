"""Checks an exported .tflite file against its Keras model in LiteRT.

The report and its thresholds are shared with the ONNX check
(`kerapose.export.onnx.verify_onnx`).

Shapes: N images, K keypoints, (H, W) input, (h, w) heatmap.
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np

from kerapose.api_export import kerapose_export
from kerapose.export.litert_runner import LiteRTModel
from kerapose.export.numpy_reference import decode_heatmaps
from kerapose.export.representative import calibration_images
from kerapose.export.tflite import static_input_shape


class TFLiteVerificationError(ValueError):
    """The .tflite outputs are further from the Keras model than allowed."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


@dataclasses.dataclass
class VerificationReport:
    """An exported file (TFLite or ONNX) vs Keras on the same images.

    Attributes:
        num_images: images compared.
        max_heatmap_diff, mean_heatmap_diff: absolute heatmap differences
            (`None` for a file with the decode in the graph).
        heatmap_peak: mean over images and keypoints of the Keras heatmap
            maxima, to judge the differences by.
        mean_keypoint_px, max_keypoint_px: keypoint displacement, input
            (crop) pixels, over the keypoints counted.
        num_keypoints: keypoints counted (those the Keras model scores
            above `score_threshold`).
        passed: all thresholds held.
        runtime: what ran the file (`"LiteRT"`, `"ONNX Runtime"`).
    """

    num_images: int
    max_heatmap_diff: float | None
    mean_heatmap_diff: float | None
    heatmap_peak: float
    mean_keypoint_px: float
    max_keypoint_px: float
    num_keypoints: int
    passed: bool = True
    failures: tuple = ()
    runtime: str = "LiteRT"

    def __str__(self):
        lines = [f"{self.runtime} vs Keras on {self.num_images} images:"]
        if self.max_heatmap_diff is not None:
            lines.append(
                f"  heatmap diff max {self.max_heatmap_diff:.4g}, mean "
                f"{self.mean_heatmap_diff:.4g} (mean peak "
                f"{self.heatmap_peak:.3g})"
            )
        lines.append(
            f"  keypoint displacement mean {self.mean_keypoint_px:.3f} px, "
            f"max {self.max_keypoint_px:.3f} px over {self.num_keypoints} "
            "keypoints (input pixels)"
        )
        lines.append(
            "  "
            + ("PASSED" if self.passed else "FAILED: ")
            + ("; ".join(self.failures))
        )
        return "\n".join(lines)


def _decoder(model, input_size):
    """The model's own decode (as the file's in-graph decode), else the
    NumPy reference: heatmaps (N, h, w, K) -> (N, K, 3)."""
    codec = getattr(model, "codec", None)
    if codec is None:
        return lambda maps: decode_heatmaps(maps, input_size)

    def decode(maps):
        keypoints, scores = codec.decode(maps)
        return np.concatenate(
            [
                keras.ops.convert_to_numpy(keypoints),
                keras.ops.convert_to_numpy(scores)[..., None],
            ],
            axis=-1,
        )

    return decode


def _run(runner, crops, progress):
    """The file's outputs on `crops`, one image at a time."""
    bar = (
        keras.utils.Progbar(len(crops), unit_name="image") if progress else None
    )
    outputs = []
    for i, crop in enumerate(crops):
        outputs.append(runner.run_one(crop[None]))
        if bar is not None:
            bar.update(i + 1)
    return np.concatenate(outputs)


@kerapose_export("kerapose.export.verify_tflite")
def verify_tflite(
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
) -> VerificationReport:
    """Runs `path` in LiteRT and compares it with `model` on `images`.

    Heatmaps are compared element-wise; keypoints are decoded the same way
    from both (the model's codec, or the NumPy reference decoder for a
    model without one; a file with the decode in its graph brings its own)
    and compared in input pixels.

    Args:
        path: the `.tflite` file written by `export_tflite`.
        model: the Keras model it was exported from.
        images: crops (N, H, W, 3), a `tf.data.Dataset` of them (e.g. real
            COCO person crops from `build_top_down_dataset(...,
            training=False)`), or `None` for synthetic crops.
        num_images: int. Images compared. Defaults to `16`.
        max_mean_keypoint_px: float or `None`. Fail when the mean keypoint
            displacement is larger. Defaults to `1.0`.
        max_heatmap_diff: float or `None`. Fail when the largest heatmap
            difference is larger. Defaults to `None` (not checked).
        score_threshold: float. Count only keypoints the Keras model
            scores above this. Defaults to `0.0`.
        raise_on_failure: bool. Raise rather than return a failed report.
            Defaults to `True`.
        num_threads: int. Interpreter threads. Defaults to `1`.
        progress: bool. Show a progress bar over the LiteRT runs. Defaults
            to `False`.

    Raises:
        FileNotFoundError, ValueError: missing or corrupt `.tflite` file.
        TFLiteVerificationError: a threshold was exceeded (and
            `raise_on_failure`); its `report` attribute has the figures.
    """
    if getattr(model, "task", None) == "single_stage":
        from kerapose.export.yolo_pose import verify_single_stage_tflite

        # Raw logits in place of heatmaps; people matched by box IoU.
        return verify_single_stage_tflite(
            path,
            model,
            images,
            num_images,
            max_mean_keypoint_px,
            max_raw_diff=max_heatmap_diff,
            score_threshold=score_threshold,
            raise_on_failure=raise_on_failure,
            num_threads=num_threads,
            progress=progress,
        )
    runner = LiteRTModel(path, num_threads=num_threads)
    shape = static_input_shape(model)
    if runner.input_shape[1:] != shape:
        raise ValueError(
            f"{path} takes inputs of shape {runner.input_shape}, the model "
            f"(1, {', '.join(map(str, shape))}): not exported from it."
        )
    crops = calibration_images(images, shape, num_images)
    keras_maps = model.predict(crops, verbose=0)
    if isinstance(keras_maps, dict):
        keras_maps = keras_maps["heatmaps"]
    keras_maps = keras.ops.convert_to_numpy(keras_maps)
    decode = _decoder(model, shape[:2])
    expected = decode(keras_maps)
    out = _run(runner, crops, progress)
    max_diff = mean_diff = None
    if out.ndim == 4:
        if out.shape != keras_maps.shape:
            raise ValueError(
                f"{path} outputs {out.shape[1:]}, the model "
                f"{keras_maps.shape[1:]}: not exported from it."
            )
        diff = np.abs(out - keras_maps)
        max_diff, mean_diff = float(diff.max()), float(diff.mean())
        out = decode(out)
    report = keypoint_report(
        expected, out, keras_maps, max_diff, mean_diff, score_threshold
    )
    failures = threshold_failures(
        report, max_mean_keypoint_px, max_heatmap_diff, max_diff, "heatmap"
    )
    return finish_report(
        report, failures, path, raise_on_failure, TFLiteVerificationError
    )


def keypoint_report(
    expected,
    actual,
    keras_maps,
    max_diff,
    mean_diff,
    score_threshold,
    runtime="LiteRT",
):
    """A `VerificationReport` without thresholds applied.

    Args:
        expected, actual: (N, K, 3) decoded `(x, y, score)` of Keras and
            of the file.
        keras_maps: (N, h, w, K) Keras heatmaps (for the mean peak).
        max_diff, mean_diff: output differences, or `None`.
        score_threshold: count keypoints Keras scores above this.
        runtime: what ran the file, for the printout.
    """
    counted = expected[..., 2] > score_threshold
    dist = np.linalg.norm(actual[..., :2] - expected[..., :2], axis=-1)
    dist = dist[counted]
    return VerificationReport(
        num_images=len(expected),
        max_heatmap_diff=max_diff,
        mean_heatmap_diff=mean_diff,
        heatmap_peak=float(keras_maps.max(axis=(1, 2)).mean()),
        mean_keypoint_px=float(dist.mean()) if dist.size else 0.0,
        max_keypoint_px=float(dist.max()) if dist.size else 0.0,
        num_keypoints=int(dist.size),
        runtime=runtime,
    )


def threshold_failures(
    report, max_mean_keypoint_px, max_output_diff, max_diff, what
) -> list:
    """The thresholds `report` exceeds, as printable lines.

    Args:
        report: a report with `mean_keypoint_px`.
        max_mean_keypoint_px: float or `None` (not checked).
        max_output_diff: float or `None` (not checked): the largest
            output difference allowed.
        max_diff: the measured one, `None` when outputs were not compared.
        what: str. The compared outputs, e.g. `"heatmap"`, `"raw output"`.
    """
    failures = []
    if (
        max_mean_keypoint_px is not None
        and report.mean_keypoint_px > max_mean_keypoint_px
    ):
        failures.append(
            f"mean keypoint displacement {report.mean_keypoint_px:.3f} px > "
            f"{max_mean_keypoint_px} px"
        )
    if (
        max_output_diff is not None
        and max_diff is not None
        and max_diff > max_output_diff
    ):
        failures.append(
            f"max {what} difference {max_diff:.4g} > {max_output_diff}"
        )
    return failures


def finish_report(report, failures, path, raise_on_failure, error):
    """Records `failures` in `report`; raises `error` when asked to."""
    report.failures = tuple(failures)
    report.passed = not failures
    if failures and raise_on_failure:
        raise error(
            f"{path} does not match the Keras model: {'; '.join(failures)}. "
            "Loosen the thresholds if this is expected of the quantization, "
            "or calibrate on more representative data.\n" + str(report),
            report,
        )
    return report
