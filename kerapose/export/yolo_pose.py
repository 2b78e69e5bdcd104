"""TFLite export and LiteRT check of single-stage (YOLO-Pose) estimators.

What the file computes, on a (1, H, W, 3) letterboxed RGB input in [0, 1]:

* default: the raw head output as one (1, R, F) float32 tensor of logits,
  the levels P3..P6 flattened and concatenated, rows in (level, y, x,
  anchor) order, fields `[tx, ty, tw, th, obj, cls, (kx, ky, kconf) x K]`.
  `raw_rows_to_levels` splits it back; `YOLOPoseDecoder` (or any port of
  its decode and NMS) turns it into people.
* `include_decode=True`: the decoder in the graph (decode, obj * cls
  score, greedy NMS at the decoder's thresholds), one (1, D, 5 + 3K)
  tensor per image: `[x1, y1, x2, y2, score, (x, y, conf) x K]` in input
  pixels, best first; rows with score 0 are padding.

Shapes: N images, R anchor rows, F fields, D detections, K keypoints.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from kerapose.export.litert_runner import LiteRTModel


def raw_rows(raw_levels):
    """List of (B, ny, nx, na, F) levels -> (B, R, F), same row order as
    `decode_levels`."""
    rows = [
        keras.ops.reshape(
            level, (-1, np.prod(level.shape[1:4]), level.shape[-1])
        )
        for level in raw_levels
    ]
    return keras.ops.concatenate(rows, axis=1)


def raw_rows_to_levels(rows, model):
    """(B, R, F) rows of the exported file -> the model's list of levels."""
    rows = np.asarray(rows)
    h, w = model.input_shape[1:3]
    na = len(model.anchors[0])
    levels, start = [], 0
    for stride in model.strides:
        shape = (-(-h // stride), -(-w // stride), na)
        count = int(np.prod(shape))
        levels.append(
            rows[:, start : start + count].reshape(-1, *shape, rows.shape[-1])
        )
        start += count
    if start != rows.shape[1]:
        raise ValueError(
            f"{rows.shape[1]} rows do not fit the model's levels ({start} "
            "rows): not exported from this model."
        )
    return levels


def pack_detections(detections):
    """Decoder dict -> (B, D, 5 + 3K): `[x1, y1, x2, y2, score,
    (x, y, conf) x K]`, one tensor so the output order is unambiguous."""
    keypoints = keras.ops.concatenate(
        [detections["keypoints"], detections["keypoint_scores"][..., None]],
        axis=-1,
    )
    b, d = keypoints.shape[0], keypoints.shape[1]
    return keras.ops.concatenate(
        [
            detections["boxes"],
            detections["scores"][..., None],
            keras.ops.reshape(keypoints, (-1 if b is None else b, d, -1)),
        ],
        axis=-1,
    )


def unpack_detections(packed):
    """(N, D, 5 + 3K) -> decoder dict of NumPy arrays (count: score > 0)."""
    packed = np.asarray(packed, np.float32)
    keypoints = packed[..., 5:].reshape(*packed.shape[:2], -1, 3)
    return {
        "boxes": packed[..., :4],
        "scores": packed[..., 4],
        "keypoints": keypoints[..., :2],
        "keypoint_scores": keypoints[..., 2],
        "num_detections": (packed[..., 4] > 0).sum(axis=1).astype(np.int32),
    }


def inference_graph(model, include_decode):
    """The exported function: raw rows, or packed detections."""
    if not include_decode:
        return lambda images: raw_rows(model(images, training=False))

    def decoded(images):
        return pack_detections(model.decoder(model(images, training=False)))

    return decoded


def calibration_images(data, input_shape, num_samples=64, seed=0):
    """(N, H, W, 3) float32 letterboxed images in [0, 1].

    Args:
        data: an array (N, H, W, 3) / (H, W, 3) of such images, a
            `tf.data.Dataset` yielding them (or tuples starting with
            them), or `None` for synthetic scenes, letterboxed.
        input_shape: `(H, W, 3)` of the model.
        num_samples: int. Most images taken.

    Raises:
        ValueError: wrong shape, not float, or values outside [0, 1] (an
            ImageNet-normalised or 0-255 image is not what YOLO-Pose takes).
    """
    from kerapose.export import representative

    if data is None:
        images = synthetic_images(input_shape[:2], num_samples, seed)
    else:
        images = representative.calibration_images(
            data, input_shape, num_samples
        )
    if images.min() < 0.0 or images.max() > 1.0:
        raise ValueError(
            "YOLO-Pose takes letterboxed RGB images scaled to [0, 1]; the "
            f"given images range over [{images.min():.3g}, "
            f"{images.max():.3g}]. Divide uint8 pixels by 255 and do not "
            "subtract a mean (see `kerapose.inference.yolo_pose.letterbox`)."
        )
    return images


def synthetic_images(input_size, num_samples=64, seed=0):
    """Letterboxed synthetic scenes (stick figures), in [0, 1]."""
    from kerapose.data.synthetic import make_synthetic_sample
    from kerapose.inference.yolo_pose import letterbox

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(num_samples):
        image, _ = make_synthetic_sample(rng, image_size=(192, 256))
        images.append(letterbox(image, input_size)[0])
    return np.stack(images).astype(np.float32) / 255.0


def coco_images(ann_file, image_dir, input_size, num_samples=64):
    """The first images of a COCO-format file, letterboxed, in [0, 1]."""
    from kerapose.data.coco_images import load_coco_images
    from kerapose.inference.image_io import read_image
    from kerapose.inference.yolo_pose import letterbox

    records, _ = load_coco_images(ann_file, image_dir, keep_empty=True)
    paths = records["image_path"][:num_samples]
    if len(paths) == 0:
        raise ValueError(f"{ann_file} lists no usable image.")
    images = [letterbox(read_image(p), input_size)[0] for p in paths]
    return np.stack(images).astype(np.float32) / 255.0


@dataclasses.dataclass
class SingleStageVerificationReport:
    """An exported YOLO-Pose file (TFLite or ONNX) vs Keras, same images.

    Keras' detections (score above `score_threshold`) are matched to the
    file's by box IoU (>= 0.5, greedy, best first); keypoint displacement
    is measured on matched people.

    Attributes:
        num_images: images compared.
        max_raw_diff, mean_raw_diff: absolute difference of the raw
            logits (`None` for a file with the decoder in the graph).
        raw_scale: mean absolute Keras logit, to judge them by.
        num_detections: Keras detections counted.
        num_matched: of those, found in the file's output.
        mean_keypoint_px, max_keypoint_px: keypoint displacement of the
            matched people, input pixels.
        num_keypoints: keypoints compared.
        runtime: what ran the file (`"LiteRT"`, `"ONNX Runtime"`).
    """

    num_images: int
    max_raw_diff: float | None
    mean_raw_diff: float | None
    raw_scale: float
    num_detections: int
    num_matched: int
    mean_keypoint_px: float
    max_keypoint_px: float
    num_keypoints: int
    passed: bool = True
    failures: tuple = ()
    runtime: str = "LiteRT"

    def __str__(self):
        lines = [f"{self.runtime} vs Keras on {self.num_images} images:"]
        if self.max_raw_diff is not None:
            lines.append(
                f"  raw output diff max {self.max_raw_diff:.4g}, mean "
                f"{self.mean_raw_diff:.4g} (mean |logit| "
                f"{self.raw_scale:.3g})"
            )
        lines.append(
            f"  people: {self.num_matched} of {self.num_detections} Keras "
            "detections found in the file's output (box IoU >= 0.5)"
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


def _box_iou(a, b):
    """(n, 4) x (m, 4) `[x1, y1, x2, y2]` -> (n, m)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), -1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def match_detections(expected, actual, score_threshold):
    """Keypoint distances (input pixels) of matched people.

    Returns:
        (distances (M * K,), number of expected people counted, matched).
    """
    distances, counted, matched = [], 0, 0
    for i in range(len(expected["scores"])):
        n = int(expected["num_detections"][i])
        keep = np.flatnonzero(expected["scores"][i, :n] > score_threshold)
        counted += len(keep)
        m = int(actual["num_detections"][i])
        if not len(keep) or not m:
            continue
        iou = _box_iou(expected["boxes"][i, keep], actual["boxes"][i, :m])
        taken = set()
        for row, j in enumerate(keep):
            order = [c for c in np.argsort(-iou[row]) if c not in taken]
            if not order or iou[row, order[0]] < 0.5:
                continue
            taken.add(order[0])
            matched += 1
            diff = (
                expected["keypoints"][i, j] - actual["keypoints"][i, order[0]]
            )
            distances.append(np.linalg.norm(diff, axis=-1))
    distances = np.concatenate(distances) if distances else np.zeros(0)
    return distances, counted, matched


def row_keypoint_distances(model, expected_rows, actual_rows, threshold):
    """Keypoint distances (input pixels) of the raw rows Keras scores
    (obj * cls) above `threshold`, both decoded by `decode_levels`."""
    from kerapose.models.yolo_pose.yolo_pose_decode import decode_levels

    def decode(rows):
        levels = raw_rows_to_levels(rows, model)
        levels = [keras.ops.convert_to_tensor(r) for r in levels]
        rows = decode_levels(levels, model.anchors, model.strides)
        return keras.ops.convert_to_numpy(rows)

    expected, actual = decode(expected_rows), decode(actual_rows)
    counted = expected[..., 4] * expected[..., 5] > threshold
    k = model.num_keypoints
    xy = lambda rows: rows[counted][:, 6:].reshape(-1, k, 3)[..., :2]  # noqa: E731
    return np.linalg.norm(xy(expected) - xy(actual), axis=-1).ravel()


def verify_single_stage_tflite(
    path,
    model,
    images=None,
    num_images=16,
    max_mean_keypoint_px=1.0,
    max_raw_diff=None,
    min_matched_fraction=0.5,
    score_threshold=None,
    raise_on_failure=True,
    num_threads=1,
    progress=False,
):
    """Runs a YOLO-Pose `.tflite` file in LiteRT and compares it with Keras.

    A raw-output file is compared element-wise, then both outputs go
    through the model's decoder; a file with the decoder in its graph
    brings its own detections. People are matched by box IoU and their
    keypoints compared in input pixels.

    Args:
        path: the `.tflite` file of `export_tflite`.
        model: the YOLO-Pose estimator it was exported from.
        images: letterboxed images in [0, 1] (N, H, W, 3), a dataset of
            them, or `None` for synthetic scenes.
        num_images: int. Images compared. Defaults to `16`.
        max_mean_keypoint_px: float or `None`. Fail above this mean
            displacement. Defaults to `1.0`.
        max_raw_diff: float or `None`. Fail above this largest raw logit
            difference. Defaults to `None` (not checked).
        min_matched_fraction: float or `None`. Fail when fewer of the
            Keras detections are found in the file's output. Defaults to
            `0.5` (int8 moves near-duplicate boxes of an untrained model
            around; a float file finds nearly all).
        score_threshold: float or `None`. Count Keras detections above
            this; `None` counts all the decoder returns.
        raise_on_failure, num_threads, progress: as `verify_tflite`.

    Raises:
        TFLiteVerificationError: a threshold was exceeded (and
            `raise_on_failure`).
    """
    from kerapose.export.tflite import static_input_shape
    from kerapose.export.verify import TFLiteVerificationError

    runner = LiteRTModel(path, num_threads=num_threads)
    shape = static_input_shape(model)
    if runner.input_shape[1:] != shape:
        raise ValueError(
            f"{path} takes inputs of shape {runner.input_shape}, the model "
            f"(1, {', '.join(map(str, shape))}): not exported from it."
        )
    images = calibration_images(images, shape, num_images)
    bar = (
        keras.utils.Progbar(len(images), unit_name="image")
        if progress
        else None
    )
    outputs = []
    for i, image in enumerate(images):
        outputs.append(runner.run_one(image[None]))
        if bar is not None:
            bar.update(i + 1)
    return compare_single_stage(
        path,
        model,
        images,
        np.concatenate(outputs),
        max_mean_keypoint_px,
        max_raw_diff,
        min_matched_fraction,
        score_threshold,
        raise_on_failure,
        runtime="LiteRT",
        error=TFLiteVerificationError,
    )


def compare_single_stage(
    path,
    model,
    images,
    out,
    max_mean_keypoint_px,
    max_raw_diff,
    min_matched_fraction,
    score_threshold,
    raise_on_failure,
    runtime,
    error,
):
    """The report of a file's outputs `out` (N, ...) on `images`, which
    the Keras model is run on here (see `verify_single_stage_tflite`)."""
    from kerapose.export.verify import finish_report
    from kerapose.export.verify import threshold_failures

    raw = [keras.ops.convert_to_numpy(r) for r in model(images, training=False)]
    expected = _decode(model, raw)
    max_diff = mean_diff = None
    keras_rows = np.concatenate(
        [r.reshape(len(r), -1, r.shape[-1]) for r in raw], 1
    )
    if out.shape == keras_rows.shape:
        diff = np.abs(out - keras_rows)
        max_diff, mean_diff = float(diff.max()), float(diff.mean())
        # Decoded at half the threshold: the file's people just below it
        # still match (NMS above a threshold does not depend on the rows
        # below it).
        actual = _decode(
            model,
            raw_rows_to_levels(out, model),
            0.5 * model.decoder.score_threshold,
        )
    elif out.ndim == 3 and out.shape[-1] == 5 + 3 * model.num_keypoints:
        actual = unpack_detections(out)
    else:
        raise ValueError(
            f"{path} outputs {out.shape[1:]}, neither the model's raw rows "
            f"{keras_rows.shape[1:]} nor its packed detections: not "
            "exported from it."
        )
    threshold = -1.0 if score_threshold is None else float(score_threshold)
    dist, counted, matched = match_detections(expected, actual, threshold)
    if max_diff is not None:
        # Raw rows correspond one to one: compare every row's keypoints
        # (no matching ambiguity between near-duplicate detections).
        dist = row_keypoint_distances(model, keras_rows, out, threshold)
    report = SingleStageVerificationReport(
        num_images=len(images),
        max_raw_diff=max_diff,
        mean_raw_diff=mean_diff,
        raw_scale=float(np.abs(keras_rows).mean()),
        num_detections=counted,
        num_matched=matched,
        mean_keypoint_px=float(dist.mean()) if dist.size else 0.0,
        max_keypoint_px=float(dist.max()) if dist.size else 0.0,
        num_keypoints=int(dist.size),
        runtime=runtime,
    )
    failures = threshold_failures(
        report, max_mean_keypoint_px, max_raw_diff, max_diff, "raw output"
    )
    if (
        min_matched_fraction is not None
        and counted
        and matched < min_matched_fraction * counted
    ):
        failures.append(
            f"only {matched} of {counted} Keras detections found (< "
            f"{min_matched_fraction:.0%})"
        )
    return finish_report(report, failures, path, raise_on_failure, error)


def _decode(model, raw_levels, score_threshold=None):
    raw_levels = [keras.ops.convert_to_tensor(r) for r in raw_levels]
    out = model.decoder(raw_levels, score_threshold)
    return {name: keras.ops.convert_to_numpy(v) for name, v in out.items()}
