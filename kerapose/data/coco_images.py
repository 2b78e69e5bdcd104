"""Loads COCO-format keypoint files into whole-image records.

The bottom-up and single-stage pipelines see every person of an image at
once: one row per image, people padded to a fixed count. The checks,
messages and skip counting are those of the per-person top-down reader
(:mod:`kerapose.data.coco`); here the report also counts images.

Shape letters: N images, P people per image (padded), K keypoints.
"""

from __future__ import annotations

import json
import os

import numpy as np

from kerapose.data.coco import _CHECK_MODES
from kerapose.data.coco import LoadReport
from kerapose.data.coco import _annotation_id
from kerapose.data.coco import _box
from kerapose.data.coco import _ImageChecker
from kerapose.data.coco import _index_images
from kerapose.data.coco import _keypoints
from kerapose.data.coco import _number
from kerapose.data.coco import _read_json
from kerapose.data.coco import _require
from kerapose.data.coco_spec import person_category
from kerapose.data.coco_spec import resolve_coco_spec
from kerapose.data.keypoint_specs import KeypointSpec

__all__ = ["load_coco_images"]


def load_coco_images(
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    spec: KeypointSpec | str | None = None,
    max_people: int = 30,
    keep_empty: bool = True,
    check_images: str = "header",
    keypoint_field: str = "keypoints",
    sigmas=None,
) -> tuple[dict[str, np.ndarray], LoadReport]:
    """Reads a COCO keypoint file into one record per image.

    A person is every non-crowd annotation of the keypoint category with a
    box of positive size inside the image (boxes are clipped to it);
    people without a labelled keypoint are persons too (a detector must
    find them) and their region is also listed in ``ignore_regions``, with
    the crowd regions, for heatmap losses that must not punish them.
    Labelled keypoints outside the image are unlabelled and counted.

    Args:
        ann_file: COCO keypoint annotation JSON.
        image_dir: Folder the ``file_name`` entries are relative to.
        spec: Keypoint spec or its name; defaults to the file's (see
            :func:`kerapose.data.coco.load_coco_instances`).
        max_people: P, people kept per image; the rest (the smallest
            boxes) are dropped and counted as ``over_max_people``.
        keep_empty: Keep images without a person (negatives for training,
            and every image for evaluation). Defaults to `True`.
        check_images: ``"exists"``, ``"header"`` or ``"decode"``, as for
            the top-down reader.
        keypoint_field: Annotation field holding the keypoints.
        sigmas: OKS sigmas for a spec built from the file's names.

    Returns:
        ``(records, report)``. ``records``: ``image_path`` (N,) str,
        ``image_id`` (N,) int64, ``image_size`` (N, 2) int32 (height,
        width), ``keypoints`` (N, P, K, 3) float32 ``x, y, v`` in image
        pixels, ``boxes`` (N, P, 4) float32 ``[x, y, w, h]``, ``areas``
        (N, P) float32, ``num_keypoints`` (N, P) int32, ``valid`` (N, P)
        bool, ``annotation_id`` (N, P) int64 (-1 for padding) and
        ``ignore_regions`` (N,) str, a JSON list of COCO segmentations
        (``"[]"`` when none). ``report.total``/``kept`` count person
        annotations, ``report.images_total``/``images_kept`` images.

    Raises:
        ValueError: Malformed files (naming the annotation and key), bad
            arguments, or no usable image file at all.
    """
    if isinstance(max_people, bool) or not isinstance(max_people, int):
        raise ValueError(f"max_people must be an int, got {max_people!r}.")
    if max_people < 1:
        raise ValueError(f"max_people must be at least 1, got {max_people}.")
    if check_images not in _CHECK_MODES:
        raise ValueError(
            f"check_images must be one of {_CHECK_MODES}, got {check_images!r}."
        )
    ann_file = os.fspath(ann_file)
    image_dir = os.fspath(image_dir)
    data = _read_json(ann_file)
    if not isinstance(data, dict):
        raise ValueError(f"{ann_file}: expected a JSON object at top level.")
    category = person_category(data, ann_file)
    spec = resolve_coco_spec(
        data, category, ann_file, spec, sigmas, keypoint_field
    )
    images = _index_images(data, ann_file)
    report = LoadReport(ann_file=ann_file, mode="images", spec=spec)
    cat_id = None if category is None else category.get("id")

    people = {image_id: [] for image_id in images}
    ignore = {image_id: [] for image_id in images}
    for person in _annotations(
        data, ann_file, images, cat_id, spec, keypoint_field, report
    ):
        image_id = person.pop("image_id")
        if person.pop("ignore"):
            ignore[image_id].append(person.pop("segmentation"))
        if person.get("skip"):
            continue
        person.pop("segmentation", None)
        people[image_id].append(person)

    checker = _ImageChecker(check_images, report)
    rows = []
    for image_id, info in images.items():
        report.images_total += 1
        persons = people[image_id]
        path = os.path.join(image_dir, str(info["file_name"]))
        reason = checker.check(path)
        if reason is not None:
            setattr(report, reason, getattr(report, reason) + len(persons))
            report.images_skipped[reason] = (
                report.images_skipped.get(reason, 0) + 1
            )
            continue
        if not persons and not keep_empty:
            report.images_skipped["no_people"] = (
                report.images_skipped.get("no_people", 0) + 1
            )
            continue
        if len(persons) > max_people:
            persons = sorted(persons, key=lambda p: -p["area"])
            report.over_max_people += len(persons) - max_people
            persons = persons[:max_people]
        report.kept += len(persons)
        report.images_kept += 1
        rows.append((image_id, info, path, persons, ignore[image_id]))
    checker.raise_if_none_usable(ann_file, image_dir)
    return _stack(rows, max_people, spec.num_keypoints), report


def _annotations(data, ann_file, images, cat_id, spec, field, report):
    """Yields one dict per annotation: a person, or a region to ignore."""
    anns = _require(data, "annotations", ann_file)
    if not isinstance(anns, list):
        raise ValueError(f"{ann_file}: 'annotations' must be a list.")
    k = spec.num_keypoints
    for i, ann in enumerate(anns):
        where = f"{ann_file}: annotations[{i}]"
        if isinstance(ann, dict) and "id" in ann:
            where = (
                f"{ann_file}: annotation id {ann['id']!r} (annotations[{i}])"
            )
        report.total += 1
        image_id = _require(ann, "image_id", where)
        box = _box(_require(ann, "bbox", where), "bbox", where)
        if cat_id is not None and ann.get("category_id", cat_id) != cat_id:
            report.other_category += 1
            continue
        if image_id not in images:
            report.unknown_image += 1
            continue
        info = images[image_id]
        segmentation = ann.get("segmentation") or _box_polygon(box)
        if ann.get("iscrowd", 0):
            report.crowd += 1
            yield {
                "image_id": image_id,
                "ignore": True,
                "segmentation": segmentation,
                "skip": "crowd",
            }
            continue
        kpts = (
            _keypoints(_require(ann, field, where), field, k, where)
            if field in ann
            else np.zeros((k, 3))
        )
        person = _person(ann, where, box, kpts, info, report)
        if person is None:
            report.invalid_box += 1
            continue
        person["image_id"] = image_id
        person["segmentation"] = segmentation
        person["ignore"] = person["num_keypoints"] == 0
        yield person


def _person(ann, where, box, kpts, info, report):
    width, height = info["width"], info["height"]
    area = _number(ann.get("area", box[2] * box[3]), "area", where)
    x, y, w, h = box
    x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x2, y2 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    if w <= 0 or h <= 0 or area <= 0 or x2 <= x1 or y2 <= y1:
        return None
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
    xy = np.where(vis[:, None] > 0, kpts[:, :2], 0.0)
    return {
        "annotation_id": _annotation_id(ann, where),
        "keypoints": np.concatenate([xy, vis[:, None]], axis=1),
        "box": (x1, y1, x2 - x1, y2 - y1),
        "area": area,
        "num_keypoints": int((vis > 0).sum()),
    }


def _box_polygon(box):
    x, y, w, h = box
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _stack(rows, p, k):
    n = len(rows)
    out = {
        "image_path": np.asarray([r[2] for r in rows], np.str_).reshape(n),
        "image_id": np.asarray([r[0] for r in rows], np.int64).reshape(n),
        "image_size": np.asarray(
            [(r[1]["height"], r[1]["width"]) for r in rows], np.int32
        ).reshape(n, 2),
        "keypoints": np.zeros((n, p, k, 3), np.float32),
        "boxes": np.zeros((n, p, 4), np.float32),
        "areas": np.zeros((n, p), np.float32),
        "num_keypoints": np.zeros((n, p), np.int32),
        "valid": np.zeros((n, p), bool),
        "annotation_id": np.full((n, p), -1, np.int64),
        "ignore_regions": np.asarray(
            [json.dumps(r[4]) for r in rows], np.str_
        ).reshape(n),
    }
    for i, (_, _, _, persons, _) in enumerate(rows):
        for j, person in enumerate(persons):
            out["keypoints"][i, j] = person["keypoints"]
            out["boxes"][i, j] = person["box"]
            out["areas"][i, j] = person["area"]
            out["num_keypoints"][i, j] = person["num_keypoints"]
            out["valid"][i, j] = True
            out["annotation_id"][i, j] = person["annotation_id"]
    return out
