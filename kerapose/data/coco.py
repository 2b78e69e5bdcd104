"""Loads COCO-format keypoint files into per-person top-down instances.

Each instance is one person box turned into the ``center``/``scale`` pair of
the official HRNet code, with its keypoints, ready for
:func:`kerapose.data.pipelines.build_top_down_dataset`. Everything that is
left out is counted in a :class:`LoadReport`, never dropped silently;
malformed values (keypoints that are not numbers, NaN) raise and name the
annotation. The keypoint spec comes from the file's keypoint names
(:mod:`kerapose.data.coco_spec`).

Shape letters: N instances, K keypoints.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from kerapose.data.coco_spec import person_category
from kerapose.data.coco_spec import resolve_coco_spec
from kerapose.data.keypoint_specs import KeypointSpec

__all__ = ["LoadReport", "box_to_center_scale", "load_coco_instances"]

PIXEL_STD = 200.0  # the official code measures scale in units of 200 px
BOX_PADDING = 1.25

_CHECK_MODES = ("exists", "header", "decode")
_MAX_LISTED_FILES = 20


@dataclasses.dataclass
class LoadReport:
    """What :func:`load_coco_instances` kept and why it left the rest out.

    ``total`` counts candidate boxes (annotations, or detections with
    ``det_file``); ``total == kept + sum(skipped.values())``.

    Attributes:
        ann_file: The annotation file read.
        mode: ``"train"`` or ``"eval"``.
        total: Candidate boxes considered.
        kept: Instances returned.
        other_category: Boxes of a category other than the keypoint one.
        unknown_image: Boxes whose ``image_id`` is not in ``images``.
        crowd: ``iscrowd`` annotations.
        no_keypoints: Train-mode annotations without a labelled keypoint
            (after dropping labels outside the image).
        low_score: Detections scored below the threshold.
        invalid_box: Boxes with ``w <= 0`` or ``h <= 0``, ``area <= 0``,
            or that lie wholly outside the image.
        missing_image: Boxes whose image file does not exist.
        corrupt_image: Boxes whose image file is not a readable JPEG/PNG.
        keypoints_outside_image: Labelled keypoints lying outside the image,
            unlabelled on load (a keypoint count, not a box count).
        missing_files: Up to 20 missing image paths, for the message.
        corrupt_files: Up to 20 corrupt image paths, for the message.
        spec: The keypoint spec the instances follow.
        images_total: Images considered (whole-image readers only).
        images_kept: Images returned (whole-image readers only).
        images_skipped: Images left out, by reason (whole-image readers).
        over_max_people: People dropped because an image held more than
            the reader's ``max_people`` (whole-image readers only).
    """

    ann_file: str = ""
    mode: str = "train"
    total: int = 0
    kept: int = 0
    other_category: int = 0
    unknown_image: int = 0
    crowd: int = 0
    no_keypoints: int = 0
    low_score: int = 0
    invalid_box: int = 0
    missing_image: int = 0
    corrupt_image: int = 0
    keypoints_outside_image: int = 0
    missing_files: list = dataclasses.field(default_factory=list)
    corrupt_files: list = dataclasses.field(default_factory=list)
    spec: KeypointSpec | None = None
    images_total: int = 0
    images_kept: int = 0
    images_skipped: dict = dataclasses.field(default_factory=dict)
    over_max_people: int = 0

    _REASONS = (
        "other_category",
        "unknown_image",
        "crowd",
        "no_keypoints",
        "low_score",
        "invalid_box",
        "missing_image",
        "corrupt_image",
        "over_max_people",
    )

    @property
    def skipped(self) -> dict[str, int]:
        """Skipped boxes by reason."""
        return {reason: getattr(self, reason) for reason in self._REASONS}

    def __str__(self) -> str:
        lines = [
            f"{self.ann_file} ({self.mode}): kept {self.kept} of "
            f"{self.total} boxes"
            + (f", keypoint spec {self.spec.name}" if self.spec else "")
        ]
        if self.images_total:
            lines.append(
                f"  images: kept {self.images_kept} of {self.images_total}"
            )
            for reason, count in self.images_skipped.items():
                lines.append(
                    f"  skipped {count} images: {reason.replace('_', ' ')}"
                )
        for reason, count in self.skipped.items():
            if count:
                lines.append(f"  skipped {count}: {reason.replace('_', ' ')}")
        if self.keypoints_outside_image:
            lines.append(
                f"  unlabelled {self.keypoints_outside_image} keypoints "
                "outside their image"
            )
        for title, files in (
            ("missing", self.missing_files),
            ("corrupt", self.corrupt_files),
        ):
            if files:
                shown = ", ".join(files[:3])
                more = f" (+{len(files) - 3} more)" if len(files) > 3 else ""
                lines.append(f"  {title} image files: {shown}{more}")
        return "\n".join(lines)


def box_to_center_scale(
    box: Any, aspect_ratio: float, padding: Any = BOX_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """Box ``[x, y, w, h]`` -> ``center``, ``scale`` as the official code.

    The size is multiplied by ``padding``, the short side enlarged so that
    ``w / h == aspect_ratio`` (the model input's width over height), and
    the size divided by the pixel std (200). For one padding factor the
    order does not matter (HRNet pads after the aspect fix); a pair pads
    width and height separately before it, as the official RSN test does.

    Args:
        box: ``[x, y, w, h]`` in image pixels.
        aspect_ratio: Input width / height, e.g. ``192 / 256``.
        padding: Context factor, or ``(x, y)`` factors. Defaults to
            ``1.25``.

    Returns:
        ``center`` (2,) and ``scale`` (2,) float32 arrays.
    """
    x, y, w, h = (float(v) for v in box[:4])
    center = np.array([x + w * 0.5, y + h * 0.5], np.float32)
    if np.ndim(padding) == 0:
        pad_x = pad_y = float(padding)
    else:
        pad_x, pad_y = (float(v) for v in padding)
    w, h = w * pad_x, h * pad_y
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w / PIXEL_STD, h / PIXEL_STD], np.float64)
    return center, scale.astype(np.float32)


def load_coco_instances(
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    spec: KeypointSpec | str | None = None,
    mode: str = "train",
    det_file: str | os.PathLike | None = None,
    det_score_threshold: float = 0.0,
    input_size: tuple[int, int] = (256, 192),
    check_images: str = "header",
    keypoint_field: str = "keypoints",
    sigmas: Any = None,
    box_padding: Any = BOX_PADDING,
) -> tuple[dict[str, np.ndarray], LoadReport]:
    """Reads a COCO keypoint file into top-down person instances.

    Train mode keeps non-crowd annotations with at least one labelled
    keypoint. Eval mode keeps every non-crowd ground-truth person box
    (zero-keypoint ones included) or, with ``det_file``, the detections
    scored at least ``det_score_threshold`` (the official code drops
    ``score < threshold``). Ground-truth boxes are clipped to the image as
    the official loader does; detection boxes are used as given.

    Args:
        ann_file: COCO keypoint annotation JSON.
        image_dir: Folder the ``file_name`` entries are relative to.
        spec: Keypoint spec or its name. Defaults to the spec the file's
            keypoint names call for: the built-in spec with the same names
            (e.g. AIC's, not CrowdPose's, for an AIC file), else one built
            from the category (names, skeleton, flip pairs from left/right
            names, ``sigmas``); a file without names gets the one built-in
            spec with its keypoint count, with a warning, or an error.
        mode: ``"train"`` or ``"eval"``.
        det_file: Optional COCO detection results JSON (eval mode only).
        det_score_threshold: Lowest detection score kept.
        input_size: Model input ``(height, width)``; sets the box aspect.
        check_images: ``"exists"`` (file exists), ``"header"`` (also JPEG
            start and end markers or PNG signature, with a full decode for
            files that fail the cheap test) or ``"decode"`` (decode every
            image once). Failing files count as ``corrupt_image``.
        keypoint_field: Annotation field holding the keypoints, e.g.
            ``"keypoints_21"`` for Human-Art's 21-point set. Its names are
            the category's entry of the same name, if any.
        sigmas: OKS sigmas (one per keypoint) for a spec built from the
            file's names. Without them such a spec has ``sigmas=None``:
            training works, OKS evaluation raises and asks for them.
        box_padding: Context around each box, one factor or ``(x, y)``
            (see :func:`box_to_center_scale`); a codec's ``box_padding``.

    Returns:
        ``(instances, report)``: ``instances`` maps ``image_path`` (N,)
        str, ``image_id`` (N,) int64, ``annotation_id`` (N,) int64 (-1 for
        detections), ``center`` (N, 2), ``scale`` (N, 2), ``keypoints``
        (N, K, 2), ``visibility`` (N, K) (the COCO flag 0/1/2), ``bbox``
        (N, 4) ``[x, y, w, h]``, ``area`` (N,) and ``score`` (N,) (1 for
        ground truth), all float32 unless noted; ``report`` is a
        :class:`LoadReport`.

    Raises:
        ValueError: For unreadable or malformed files (naming the file, the
            annotation and the missing or bad key), keypoints that are not
            numbers or not finite, an unknown mode, a spec that cannot be
            told, or when no image file is usable (all missing or corrupt:
            ``image_dir`` is probably wrong).
    """
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}.")
    if det_file is not None and mode != "eval":
        raise ValueError("det_file is only used in mode='eval'.")
    if check_images not in _CHECK_MODES:
        raise ValueError(
            f"check_images must be one of {_CHECK_MODES}, got {check_images!r}."
        )
    ann_file = os.fspath(ann_file)
    data = _read_json(ann_file)
    if not isinstance(data, dict):
        raise ValueError(f"{ann_file}: expected a JSON object at top level.")
    category = person_category(data, ann_file)
    spec = resolve_coco_spec(
        data, category, ann_file, spec, sigmas, keypoint_field
    )
    images = _index_images(data, ann_file)
    aspect = float(input_size[1]) / float(input_size[0])
    report = LoadReport(ann_file=ann_file, mode=mode, spec=spec)
    image_dir = os.fspath(image_dir)
    checker = _ImageChecker(check_images, report)
    cat_id = None if category is None else category.get("id")

    if det_file is None:
        candidates = _gt_candidates(
            data, ann_file, images, cat_id, spec, mode, keypoint_field
        )
    else:
        candidates = _det_candidates(
            os.fspath(det_file), images, cat_id, spec, det_score_threshold
        )
    rows = []
    for cand in candidates:
        report.total += 1
        reason = cand.get("skip")
        if reason is None:
            info = images[cand["image_id"]]
            reason, row = _make_row(
                cand, info, image_dir, aspect, box_padding, mode, report
            )
        if reason is None:
            reason = checker.check(row["image_path"])
        if reason is not None:
            setattr(report, reason, getattr(report, reason) + 1)
            continue
        rows.append(row)
    report.kept = len(rows)
    checker.raise_if_none_usable(ann_file, image_dir)
    return _stack(rows, spec.num_keypoints), report


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}).") from err


def _require(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{where} has no '{key}'.")
    return obj[key]


def _index_images(data: dict, ann_file: str) -> dict:
    images = _require(data, "images", ann_file)
    if not isinstance(images, list):
        raise ValueError(f"{ann_file}: 'images' must be a list.")
    index = {}
    for i, img in enumerate(images):
        where = f"{ann_file}: images[{i}]"
        info = {key: _require(img, key, where) for key in ("id", "file_name")}
        if isinstance(info["id"], bool) or not isinstance(info["id"], int):
            raise ValueError(f"{where}: 'id' must be an integer.")
        for key in ("width", "height"):
            info[key] = _number(_require(img, key, where), key, where)
        index[info["id"]] = info
    return index


def _is_number(value: Any) -> bool:
    # Strings would pass float() and bools are ints: refuse both.
    return isinstance(value, (int, float, np.number)) and not isinstance(
        value, (bool, np.bool_)
    )


def _number(value: Any, key: str, where: str) -> float:
    if not _is_number(value):
        raise ValueError(f"{where}: '{key}' is not a number (got {value!r}).")
    if not np.isfinite(value):
        raise ValueError(f"{where}: '{key}' is {value} (not finite).")
    return float(value)


def _box(value: Any, key: str, where: str) -> list[float]:
    if not (
        isinstance(value, (list, tuple))
        and len(value) == 4
        and all(_is_number(v) for v in value)
    ):
        raise ValueError(f"{where}: '{key}' is not [x, y, w, h] numbers.")
    box = [float(v) for v in value]
    if not all(np.isfinite(box)):
        raise ValueError(f"{where}: '{key}' {box} is not finite.")
    return box


def _keypoints(raw: Any, field: str, k: int, where: str) -> np.ndarray:
    """(K, 3) float64 ``x, y, v`` of an annotation, checked."""
    try:
        arr = np.asarray(raw)
    except ValueError:  # ragged nesting
        raise ValueError(
            f"{where}: '{field}' is not {k} x (x, y, v) values (ragged lists)."
        ) from None
    if arr.dtype.kind not in "iuf":
        bad = next((v for v in np.ravel(arr) if not _is_number(v)), None)
        raise ValueError(
            f"{where}: '{field}' holds non-numbers (e.g. {bad!r}, a "
            f"{type(bad).__name__}); keypoints must be numbers: fix the file "
            "(strings are not converted)."
        )
    if arr.size != 3 * k:
        raise ValueError(
            f"{where}: '{field}' is not {k} x (x, y, v) values "
            f"(got {arr.size} values)."
        )
    kpts = arr.reshape(k, 3).astype(np.float64)
    # Unlabelled coordinates are ignored (zeroed), so only labelled ones
    # and the flags must be finite.
    bad = ~np.isfinite(kpts[:, 2]) | (
        (kpts[:, 2] > 0) & ~np.isfinite(kpts[:, :2]).all(axis=1)
    )
    if bad.any():
        raise ValueError(
            f"{where}: '{field}' has NaN or infinite values at keypoints "
            f"{np.flatnonzero(bad).tolist()}."
        )
    return kpts


def _annotation_id(ann: dict, where: str) -> int:
    ann_id = ann.get("id", -1)
    if isinstance(ann_id, bool) or not isinstance(ann_id, (int, np.integer)):
        raise ValueError(f"{where}: 'id' must be an integer, got {ann_id!r}.")
    return int(ann_id)


def _gt_candidates(data, ann_file, images, cat_id, spec, mode, field):
    anns = _require(data, "annotations", ann_file)
    if not isinstance(anns, list):
        raise ValueError(f"{ann_file}: 'annotations' must be a list.")
    k = spec.num_keypoints
    for i, ann in enumerate(anns):
        row = f"annotations[{i}]"
        where = f"{ann_file}: {row}"
        if isinstance(ann, dict) and "id" in ann:
            where = f"{ann_file}: annotation id {ann['id']!r} ({row})"
        image_id = _require(ann, "image_id", where)
        box = _box(_require(ann, "bbox", where), "bbox", where)
        if field in ann or mode == "train":
            kpts = _keypoints(_require(ann, field, where), field, k, where)
        else:
            kpts = np.zeros((k, 3))
        cand = {
            "image_id": image_id,
            "annotation_id": _annotation_id(ann, where),
            "box": box,
            "keypoints": kpts,
            "score": 1.0,
            "clip_box": True,
        }
        cand["area"] = _number(ann.get("area", box[2] * box[3]), "area", where)
        if cat_id is not None and ann.get("category_id", cat_id) != cat_id:
            cand["skip"] = "other_category"
        elif image_id not in images:
            cand["skip"] = "unknown_image"
        elif ann.get("iscrowd", 0):
            cand["skip"] = "crowd"
        yield cand


def _det_candidates(det_file, images, cat_id, spec, threshold):
    dets = _read_json(det_file)
    if not isinstance(dets, list):
        raise ValueError(f"{det_file}: expected a list of detections.")
    zeros = np.zeros((spec.num_keypoints, 3))
    for i, det in enumerate(dets):
        where = f"{det_file}: [{i}]"
        image_id = _require(det, "image_id", where)
        box = _box(_require(det, "bbox", where), "bbox", where)
        score = _number(_require(det, "score", where), "score", where)
        cand = {
            "image_id": image_id,
            "annotation_id": -1,
            "box": box,
            "keypoints": zeros,
            "score": score,
            "area": box[2] * box[3],
            "clip_box": False,
        }
        if cat_id is not None and det.get("category_id", cat_id) != cat_id:
            cand["skip"] = "other_category"
        elif image_id not in images:
            cand["skip"] = "unknown_image"
        elif score < threshold:
            cand["skip"] = "low_score"
        yield cand


def _make_row(cand, info, image_dir, aspect, box_padding, mode, report):
    """Returns ``(skip_reason, row)`` for one candidate box."""
    width, height = info["width"], info["height"]
    x, y, w, h = cand["box"]
    if w <= 0 or h <= 0 or cand["area"] <= 0:
        return "invalid_box", None
    if cand["clip_box"]:
        # The official loader's sanitising, kept as is (it offsets x2 from
        # the clipped x1, so a box starting left of the image shrinks).
        x1, y1 = max(0.0, x), max(0.0, y)
        x2 = min(width - 1, x1 + max(0.0, w - 1))
        y2 = min(height - 1, y1 + max(0.0, h - 1))
        if x2 < x1 or y2 < y1 or (x2 == x1 and y2 == y1):
            return "invalid_box", None
        x, y, w, h = x1, y1, x2 - x1, y2 - y1
    kpts = cand["keypoints"]
    vis = np.clip(kpts[:, 2], 0, 2)
    outside = (vis > 0) & (
        (kpts[:, 0] < 0)
        | (kpts[:, 1] < 0)
        | (kpts[:, 0] > width)
        | (kpts[:, 1] > height)
    )
    if outside.any():
        report.keypoints_outside_image += int(outside.sum())
        vis = np.where(outside, 0.0, vis)
    if mode == "train" and not (vis > 0).any():
        return "no_keypoints", None
    center, scale = box_to_center_scale((x, y, w, h), aspect, box_padding)
    row = {
        "image_path": os.path.join(image_dir, str(info["file_name"])),
        "image_id": cand["image_id"],
        "annotation_id": cand["annotation_id"],
        "center": center,
        "scale": scale,
        "keypoints": np.where(vis[:, None] > 0, kpts[:, :2], 0.0),
        "visibility": vis,
        "bbox": (x, y, w, h),
        "area": cand["area"],
        "score": cand["score"],
    }
    return None, row


class _ImageChecker:
    """Checks each image file once and remembers the verdict."""

    def __init__(self, mode: str, report: LoadReport):
        self.mode = mode
        self.report = report
        self.verdicts: dict[str, str | None] = {}

    def raise_if_none_usable(self, ann_file: str, image_dir: str) -> None:
        """Raises when images were checked and not one was usable."""
        verdicts = list(self.verdicts.values())
        if not verdicts or None in verdicts:
            return
        missing = verdicts.count("missing_image")
        example = (self.report.missing_files or self.report.corrupt_files)[0]
        raise ValueError(
            f"{ann_file}: none of its {len(verdicts)} image files is usable "
            f"({missing} missing, {len(verdicts) - missing} not a readable "
            f"JPEG/PNG; e.g. {example}). Check image_dir ({image_dir!r}): "
            "'file_name' entries are relative to it."
        )

    def check(self, path: str) -> str | None:
        if path not in self.verdicts:
            verdict = _check_image(path, self.mode)
            self.verdicts[path] = verdict
            files = {
                "missing_image": self.report.missing_files,
                "corrupt_image": self.report.corrupt_files,
            }.get(verdict)
            if files is not None and len(files) < _MAX_LISTED_FILES:
                files.append(path)
        return self.verdicts[path]


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_image(path: str, mode: str) -> str | None:
    """Returns None for a usable image, else the skip reason."""
    if not os.path.isfile(path):
        return "missing_image"
    if mode == "exists":
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(max(0, os.path.getsize(path) - 64))
            tail = f.read()
    except OSError:
        return "corrupt_image"
    is_jpeg = head[:3] == b"\xff\xd8\xff"
    if not is_jpeg and head != _PNG_MAGIC:
        return "corrupt_image"
    # Padding after the end-of-image marker is common and harmless.
    ends_well = tail.rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9")
    if mode == "header" and is_jpeg and ends_well:
        return None
    # Odd endings (or PNGs, or mode "decode"): let the decoder used by the
    # pipeline decide, so the check matches what training will see.
    return None if _decodes(path) else "corrupt_image"


def _decodes(path: str) -> bool:
    import tensorflow as tf

    try:
        tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError):
        return False
    return True


def _stack(rows: list, k: int) -> dict[str, np.ndarray]:
    n = len(rows)

    def col(key, dtype, shape=()):
        if not rows:
            return np.zeros((0, *shape), dtype)
        return np.asarray([r[key] for r in rows], dtype).reshape(n, *shape)

    return {
        "image_path": np.asarray(
            [r["image_path"] for r in rows], dtype=np.str_
        ).reshape(n),
        "image_id": col("image_id", np.int64),
        "annotation_id": col("annotation_id", np.int64),
        "center": col("center", np.float32, (2,)),
        "scale": col("scale", np.float32, (2,)),
        "keypoints": col("keypoints", np.float32, (k, 2)),
        "visibility": col("visibility", np.float32, (k,)),
        "bbox": col("bbox", np.float32, (4,)),
        "area": col("area", np.float32),
        "score": col("score", np.float32),
    }
