"""COCO-style keypoint AP/AR through pycocotools, hardened for real files.

Shape letters: N predictions, K keypoints.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kerapose.eval.functional import COCO_SIGMAS
from kerapose.eval.protocol import CROWD_METRIC_NAMES
from kerapose.eval.protocol import check_finite_predictions
from kerapose.eval.protocol import crowd_levels
from kerapose.eval.protocol import resolve_use_area

__all__ = ["COCOEvaluator", "METRIC_NAMES"]

# Order of pycocotools' `COCOeval.stats` for iouType "keypoints".
METRIC_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APM",
    "APL",
    "AR",
    "AR50",
    "AR75",
    "ARM",
    "ARL",
)

# xtcocotools / mmpose scale the box area by this when `use_area=False`,
# as the official CrowdPose evaluation always does: a person covers
# roughly half of its box.
_BOX_AREA_FACTOR = 0.53

_MAX_IDS_IN_ERROR = 20


def _load_dataset(ann_file_or_dict: Any) -> tuple[dict, str]:
    """Returns a private copy of the annotation dict and a name for errors."""
    if isinstance(ann_file_or_dict, Mapping):
        dataset = copy.deepcopy(dict(ann_file_or_dict))
        source = "annotation dict"
    elif isinstance(ann_file_or_dict, (str, os.PathLike)):
        source = os.fspath(ann_file_or_dict)
        try:
            with open(source, encoding="utf-8") as f:
                dataset = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(
                f"{source}: not a valid JSON annotation file ({err})"
            ) from err
    else:
        raise TypeError(
            "ann_file_or_dict must be a path or a dict, got "
            f"{type(ann_file_or_dict).__name__}"
        )
    if not isinstance(dataset, dict):
        raise ValueError(
            f"{source}: expected a COCO-format JSON object at top level, got "
            f"a {type(dataset).__name__} (list-format files such as MPII "
            "are not COCO annotations)"
        )
    for key in ("images", "annotations"):
        if key not in dataset:
            raise ValueError(f"{source}: missing required key '{key}'")
        if not isinstance(dataset[key], list):
            raise ValueError(f"{source}: '{key}' must be a list")
    for i, img in enumerate(dataset["images"]):
        if not isinstance(img, dict) or "id" not in img:
            raise ValueError(f"{source}: images[{i}] has no 'id'")
    return dataset, source


def _pick_category(dataset: dict, source: str, category_id: Any) -> dict:
    """Finds (or synthesises) the keypoint category to evaluate."""
    cats = dataset.get("categories") or []
    if not cats:
        # Some converted files drop `categories`; pycocotools needs them.
        ids = {a.get("category_id", 1) for a in dataset["annotations"]}
        cats = [{"id": cid, "name": str(cid)} for cid in sorted(ids, key=str)]
        if not cats:
            cats = [{"id": 1, "name": "person"}]
        dataset["categories"] = cats
    if category_id is not None:
        for cat in cats:
            if cat.get("id") == category_id:
                return cat
        raise ValueError(f"{source}: no category with id {category_id!r}")
    with_kpts = [c for c in cats if c.get("keypoints")]
    if len(with_kpts) == 1:
        return with_kpts[0]
    if not with_kpts and len(cats) == 1:
        return cats[0]
    raise ValueError(
        f"{source}: cannot tell which of the categories "
        f"{[c.get('id') for c in cats]} to evaluate; pass category_id"
    )


def _labelled_extent(kpts: np.ndarray) -> list[float] | None:
    """`[x, y, w, h]` around the labelled (v > 0) keypoints, or None."""
    labelled = kpts[kpts[:, 2] > 0]
    if labelled.size == 0:
        return None
    x0, y0 = labelled[:, :2].min(axis=0)
    x1, y1 = labelled[:, :2].max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def _normalise_gt(
    dataset: dict,
    source: str,
    category_id: Any,
    num_keypoints: int,
    use_area: bool,
    keypoint_field: str = "keypoints",
) -> dict[str, int]:
    """Fills the fields pycocotools needs, in place on the private copy.

    With another `keypoint_field`, its values replace `keypoints` (the
    field pycocotools reads) and `num_keypoints` is counted from them.

    Returns the number of annotations for which each field was filled.
    """
    report = {
        "area_from_bbox": 0,
        "area_from_keypoints": 0,
        "bbox": 0,
        "num_keypoints": 0,
        "iscrowd": 0,
        "id": 0,
        "category_id": 0,
    }
    anns = dataset["annotations"]
    used_ids = {a["id"] for a in anns if isinstance(a, dict) and "id" in a}
    next_id = max((i for i in used_ids if isinstance(i, int)), default=0) + 1
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise ValueError(f"{source}: annotations[{i}] has no 'image_id'")
        if "category_id" not in ann:
            ann["category_id"] = category_id
            report["category_id"] += 1
        if "id" not in ann:
            while next_id in used_ids:
                next_id += 1
            ann["id"] = next_id
            used_ids.add(next_id)
            report["id"] += 1
        if ann["category_id"] != category_id:
            continue
        name = f"{source}: annotation id {ann['id']!r}"
        if keypoint_field not in ann:
            raise ValueError(f"{name} has no {keypoint_field!r}")
        kpts = np.asarray(ann[keypoint_field], dtype=np.float64)
        if kpts.shape != (3 * num_keypoints,):
            raise ValueError(
                f"{name} has {kpts.size} {keypoint_field!r} values, "
                f"expected {3 * num_keypoints} ({num_keypoints} keypoints "
                "x 3)"
            )
        kpts = kpts.reshape(num_keypoints, 3)
        if keypoint_field != "keypoints":
            # The stored count belongs to the other keypoint set.
            ann["keypoints"] = list(ann[keypoint_field])
            ann["num_keypoints"] = int(np.count_nonzero(kpts[:, 2] > 0))
        if "num_keypoints" not in ann:
            ann["num_keypoints"] = int(np.count_nonzero(kpts[:, 2] > 0))
            report["num_keypoints"] += 1
        if "iscrowd" not in ann:
            ann["iscrowd"] = 0
            report["iscrowd"] += 1
        bbox_from_kpts = False
        if not ann.get("bbox"):
            ann["bbox"] = _labelled_extent(kpts) or [0.0, 0.0, 0.0, 0.0]
            bbox_from_kpts = True
            report["bbox"] += 1
        box_area = float(ann["bbox"][2]) * float(ann["bbox"][3])
        if not use_area:
            ann["area"] = box_area * _BOX_AREA_FACTOR
        elif "area" not in ann:
            ann["area"] = box_area
            key = "area_from_keypoints" if bbox_from_kpts else "area_from_bbox"
            report[key] += 1
    return report


def _normalise_image_id(value: Any) -> Any:
    # JSON ids are ints; a float id like 785.0 from a float array must match.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class COCOEvaluator:
    """Accumulates keypoint predictions and scores them with pycocotools.

    Wraps `pycocotools.cocoeval.COCOeval(..., "keypoints")` and deals with
    what real annotation files and prediction streams throw at it:

    * Ground truth without `area` (CrowdPose, AIC...): filled with the box
      area `w * h`, or the labelled-keypoint extent when there is no box.
      Missing `bbox`, `num_keypoints`, `iscrowd`, `id` are filled as well.
      This happens on a private copy; counts are in `fill_report` and a
      warning says how many annotations were filled.
    * Predictions whose keypoint scores are all zero are kept (pycocotools
      ignores keypoint scores; only coordinates and the instance score
      matter).
    * No predictions at all: `result()` warns and returns zeros.
    * Ties in instance scores: predictions are handed to pycocotools sorted
      by (-score, image id, insertion index). The result therefore does not
      depend on how predictions of different images are interleaved or
      batched; equal-score predictions of the same image keep the order in
      which they were added, which is also what pycocotools does with a
      results list.
    * Keypoint sets other than COCO's 17 (CrowdPose 14...): `sigmas` must
      be given (`from_spec` takes them from a keypoint spec).
    * Files with a second keypoint set beside `keypoints` (Human-Art's
      `keypoints_21`): `keypoint_field` picks the one to score.
    * Predictions with NaN or infinite values: `update` raises, naming the
      rows and their image ids.

    Metrics are pycocotools' ten keypoint numbers (see `METRIC_NAMES`); as
    there, a value of -1.0 means undefined (no ground truth in that area
    range). Predictions are evaluated against every image of the ground
    truth: an image without predictions counts as all people missed. As in
    pycocotools, only the 20 best-scored predictions of an image count.

    CrowdPose-format files (every image carries a `crowdIndex`) also get
    `AP_easy`, `AP_medium` and `AP_hard` (see `CROWD_METRIC_NAMES`): AP
    over the images with crowd index below 0.2, from 0.2 to below 0.8, and
    from 0.8 (`CROWD_INDEX_SPLITS`, as in the official CrowdPose code);
    -1.0 for a level without images. The official CrowdPose table reports
    AP, AP50, AP75, AR, AR50, AR75 and these three; it scores OKS with
    `use_area=False` (`from_spec` with the CrowdPose spec does that) and,
    like pycocotools, counts 20 predictions per image. APM / APL / ARM /
    ARL are pycocotools' extras, not part of the CrowdPose protocol.

    Args:
        ann_file_or_dict: COCO-format keypoint annotations, as a JSON path
            or an already-loaded dict (which is not modified).
        sigmas: (K,) per-keypoint OKS constants. Defaults to the COCO ones,
            and is required when the dataset does not have 17 keypoints.
        use_area: True scales OKS by each ground-truth `area` (the COCO
            protocol; missing areas are filled, see above). False ignores
            `area` and uses 0.53 times the box area for every annotation,
            the official protocol of CrowdPose and AIC. None is True here;
            `from_spec` takes the default from a keypoint spec.
        iou_type: Only "keypoints" is supported.
        category_id: The category to evaluate; needed only when the file
            has several categories with keypoints.
        keypoint_field: The annotation field holding the ground-truth
            keypoints, e.g. "keypoints_21" for Human-Art's 21-point set.
            Defaults to "keypoints".
        verbose: Print pycocotools' log and summary table from `result()`.
            Either way the captured text is kept in `summary`.

    Raises:
        ValueError: On a malformed annotation file (not JSON, missing
            `images` or `annotations`, wrong keypoint counts), an
            unsupported `iou_type`, or missing / mismatched `sigmas`.
    """

    def __init__(
        self,
        ann_file_or_dict: str | os.PathLike | Mapping,
        sigmas: ArrayLike | None = None,
        use_area: bool | None = True,
        iou_type: str = "keypoints",
        *,
        category_id: Any = None,
        keypoint_field: str = "keypoints",
        verbose: bool = False,
    ) -> None:
        if not isinstance(keypoint_field, str) or not keypoint_field:
            raise ValueError(
                "keypoint_field must be an annotation field name such as "
                f"'keypoints', got {keypoint_field!r}"
            )
        if iou_type != "keypoints":
            raise ValueError(
                f"iou_type {iou_type!r} is not supported; only 'keypoints'"
            )
        self.iou_type = iou_type
        self.use_area = resolve_use_area(use_area)
        self.keypoint_field = keypoint_field
        self.verbose = bool(verbose)

        dataset, source = _load_dataset(ann_file_or_dict)
        self.source = source
        category = _pick_category(dataset, source, category_id)
        self.category_id = category["id"]
        self.num_keypoints = self._infer_num_keypoints(
            dataset, source, category, keypoint_field
        )
        self.sigmas = self._resolve_sigmas(sigmas, source)

        self.fill_report = _normalise_gt(
            dataset,
            source,
            self.category_id,
            self.num_keypoints,
            self.use_area,
            keypoint_field,
        )
        self._warn_about_fills()
        self.crowd_splits = crowd_levels(dataset, source)

        self._coco_gt = COCO()
        self._coco_gt.dataset = dataset
        with contextlib.redirect_stdout(io.StringIO()):
            self._coco_gt.createIndex()
        gt_ids = list(self._coco_gt.getImgIds())
        self._image_ids = set(gt_ids)
        try:
            ranked = sorted(gt_ids)
        except TypeError:
            ranked = sorted(gt_ids, key=repr)
        self._id_rank = {img_id: r for r, img_id in enumerate(ranked)}
        self.summary = ""
        self.reset()

    @classmethod
    def from_spec(
        cls,
        ann_file_or_dict: str | os.PathLike | Mapping,
        spec: Any,
        use_area: bool | None = None,
        *,
        keypoint_field: str = "keypoints",
        **kwargs: Any,
    ) -> COCOEvaluator:
        """An evaluator with the protocol of a keypoint spec.

        The entry point for evaluation code (top-down, bottom-up, ...):
        pass `use_area` and `keypoint_field` through unchanged.

        Args:
            ann_file_or_dict: See the class.
            spec: Keypoint spec: its `sigmas` (required), and its
                `use_area` flag for the default `use_area`.
            use_area: True / False as in the class; None (the default)
                follows the spec, see `resolve_use_area`.
            keypoint_field: See the class.
            **kwargs: Other `COCOEvaluator` arguments (`category_id`,
                `verbose`).

        Returns:
            A `COCOEvaluator`.
        """
        # Specs built from a file's names may have no sigmas: ask for them.
        require = getattr(spec, "require_sigmas", None)
        sigmas = require("keypoint evaluation") if require else spec.sigmas
        return cls(
            ann_file_or_dict,
            sigmas=sigmas,
            use_area=resolve_use_area(use_area, spec),
            keypoint_field=keypoint_field,
            **kwargs,
        )

    # ----------------------------------------------------------------- setup

    @staticmethod
    def _infer_num_keypoints(
        dataset: dict, source: str, category: dict, field: str = "keypoints"
    ) -> int:
        # Category keypoint names describe the `keypoints` field; another
        # field counts only if the category lists names under its own key.
        names = category.get(field)
        if isinstance(names, list) and names:
            return len(names)
        for ann in dataset["annotations"]:
            if (
                isinstance(ann, dict)
                and ann.get("category_id", category["id"]) == category["id"]
                and field in ann
            ):
                return len(ann[field]) // 3
        raise ValueError(
            f"{source}: cannot tell the number of keypoints: category "
            f"{category['id']!r} lists no {field!r} and no annotation has any"
        )

    def _resolve_sigmas(
        self, sigmas: ArrayLike | None, source: str
    ) -> np.ndarray:
        k = self.num_keypoints
        if sigmas is None:
            if k != len(COCO_SIGMAS):
                raise ValueError(
                    f"{source} has {k} keypoints, not COCO's 17: pass the "
                    f"dataset's {k} OKS sigmas (e.g. CROWDPOSE_SIGMAS for "
                    "CrowdPose)"
                )
            return np.array(COCO_SIGMAS, dtype=np.float64)
        sig = np.asarray(sigmas, dtype=np.float64)
        if sig.shape != (k,):
            raise ValueError(
                f"sigmas must have shape ({k},) for {source}, got {sig.shape}"
            )
        if not np.all(np.isfinite(sig)) or np.any(sig <= 0):
            raise ValueError("sigmas must be finite and positive")
        return sig

    def _warn_about_fills(self) -> None:
        rep = self.fill_report
        n_area = rep["area_from_bbox"] + rep["area_from_keypoints"]
        parts = []
        if n_area:
            parts.append(
                f"{n_area} had no 'area' ({rep['area_from_bbox']} filled "
                f"with the box area w*h, {rep['area_from_keypoints']} with "
                "the keypoint extent)"
            )
        for key in ("bbox", "num_keypoints", "iscrowd", "id", "category_id"):
            if rep[key]:
                parts.append(f"{rep[key]} had no '{key}'")
        if parts:
            warnings.warn(
                f"{self.source}: ground-truth annotations filled on a copy: "
                + "; ".join(parts),
                UserWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------ stateful

    def reset(self) -> None:
        """Drops all accumulated predictions."""
        self._image_id_list: list[Any] = []
        self._keypoints: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._areas: list[np.ndarray] = []

    @property
    def coco_gt(self) -> COCO:
        """The checked ground truth (gaps filled, on a private copy) as a
        pycocotools `COCO`, e.g. for a box evaluation on the same file."""
        return self._coco_gt

    @property
    def num_predictions(self) -> int:
        """Number of predictions accumulated so far."""
        return len(self._image_id_list)

    def update(
        self,
        image_ids: ArrayLike,
        keypoints: ArrayLike,
        scores: ArrayLike,
        areas: ArrayLike | None = None,
    ) -> None:
        """Adds a batch of predicted instances.

        Args:
            image_ids: (N,) ground-truth image id of each prediction.
            keypoints: (N, K, 3) keypoints `x, y, score` in original image
                pixels.
            scores: (N,) instance scores (used for ranking).
            areas: Optional (N,) areas, e.g. of the detection boxes. They
                replace the keypoint-extent area pycocotools gives to each
                prediction, which only decides whether an *unmatched*
                prediction counts in the medium / large breakdowns
                (APM, APL, ARM, ARL). Leave None to match the official
                evaluation.

        Raises:
            ValueError: On wrong shapes, non-finite values (the rows are
                named, counted from the last `reset`, with their image
                ids), or image ids that are not in the ground truth (all of
                them are named).
        """
        k = self.num_keypoints
        kpts = np.asarray(keypoints, dtype=np.float64)
        if kpts.ndim != 3 or kpts.shape[1:] != (k, 3):
            raise ValueError(
                f"keypoints must have shape (N, {k}, 3), got {kpts.shape}"
            )
        n = kpts.shape[0]
        ids = np.asarray(image_ids)
        if ids.shape != (n,):
            raise ValueError(
                f"image_ids must have shape ({n},) to match keypoints, got "
                f"{ids.shape}"
            )
        score = np.asarray(scores, dtype=np.float64)
        if score.shape != (n,):
            raise ValueError(
                f"scores must have shape ({n},) to match keypoints, got "
                f"{score.shape}"
            )
        if areas is None:
            area = np.full(n, np.nan)
        else:
            area = np.asarray(areas, dtype=np.float64)
            if area.shape != (n,):
                raise ValueError(
                    f"areas must have shape ({n},) to match keypoints, got "
                    f"{area.shape}"
                )
        id_list = [_normalise_image_id(v) for v in ids.tolist()]
        checked = {"keypoints": kpts, "scores": score}
        if areas is not None:
            checked["areas"] = area
        check_finite_predictions(id_list, checked, self.num_predictions)
        if np.any(area < 0):
            raise ValueError("areas must be non-negative")
        unknown = {v for v in id_list if v not in self._image_ids}
        if unknown:
            shown = sorted(unknown, key=repr)
            more = len(shown) - _MAX_IDS_IN_ERROR
            text = ", ".join(repr(v) for v in shown[:_MAX_IDS_IN_ERROR])
            if more > 0:
                text += f" (and {more} more)"
            raise ValueError(
                f"image ids not in the ground truth ({self.source}): {text}"
            )

        self._image_id_list.extend(id_list)
        self._keypoints.append(kpts)
        self._scores.append(score)
        self._areas.append(area)

    # -------------------------------------------------------------- output

    def _sorted_arrays(self):
        """All predictions in the deterministic evaluation order."""
        n = self.num_predictions
        k = self.num_keypoints
        if n == 0:
            return [], np.zeros((0, k, 3)), np.zeros(0), np.zeros(0)
        kpts = np.concatenate(self._keypoints)
        score = np.concatenate(self._scores)
        area = np.concatenate(self._areas)
        rank = np.array([self._id_rank[i] for i in self._image_id_list])
        # np.lexsort: the last key is the primary one.
        order = np.lexsort((np.arange(n), rank, -score))
        ids = [self._image_id_list[i] for i in order]
        return ids, kpts[order], score[order], area[order]

    def coco_results(self) -> list[dict]:
        """The predictions in COCO results format, in evaluation order.

        Returns:
            A list of `{"image_id", "category_id", "keypoints" (3K floats),
            "score"}` dicts.
        """
        ids, kpts, score, _ = self._sorted_arrays()
        return [
            {
                "image_id": img_id,
                "category_id": self.category_id,
                "keypoints": [float(v) for v in kp.reshape(-1)],
                "score": float(s),
            }
            for img_id, kp, s in zip(ids, kpts, score)
        ]

    def write_results_json(self, path: str | os.PathLike) -> Path:
        """Writes `coco_results()` to a JSON file.

        Args:
            path: Destination file; its folder must exist.

        Returns:
            The path written.
        """
        path = Path(path)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.coco_results(), f)
        return path

    def result(self) -> dict[str, float]:
        """Evaluates everything accumulated so far.

        Returns:
            `{name: float}` for each of `METRIC_NAMES`, plus
            `CROWD_METRIC_NAMES` for a CrowdPose-format file; -1.0 marks a
            metric pycocotools cannot define (no ground truth in that area
            range or crowd level). With no predictions at all every value
            is 0.0 and a warning is issued.
        """
        names = METRIC_NAMES
        if self.crowd_splits is not None:
            names = names + CROWD_METRIC_NAMES
        if self.num_predictions == 0:
            warnings.warn(
                "COCOEvaluator.result() called without predictions; "
                "returning zeros",
                UserWarning,
                stacklevel=2,
            )
            self.summary = ""
            return {name: 0.0 for name in names}

        results = self.coco_results()
        _, _, _, area = self._sorted_arrays()
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            coco_dt = self._coco_gt.loadRes(results)
            # loadRes keeps our dicts and their order, so index i is row i.
            for ann, a in zip(coco_dt.dataset["annotations"], area):
                if not np.isnan(a):
                    ann["area"] = float(a)
            coco_eval = self._coco_eval(coco_dt)
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
            metrics = {
                name: float(v) for name, v in zip(METRIC_NAMES, coco_eval.stats)
            }
            for name, img_ids in (self.crowd_splits or {}).items():
                metrics[name] = self._subset_ap(coco_dt, img_ids)
        for name in CROWD_METRIC_NAMES:
            if name in metrics:
                log.write(
                    f" {name:<9} (CrowdPose level) = {metrics[name]:.3f}\n"
                )
        self.summary = log.getvalue()
        if self.verbose:
            print(self.summary, end="")
        return metrics

    def _coco_eval(self, coco_dt: COCO) -> COCOeval:
        coco_eval = COCOeval(self._coco_gt, coco_dt, self.iou_type)
        coco_eval.params.kpt_oks_sigmas = self.sigmas
        coco_eval.params.catIds = [self.category_id]
        return coco_eval

    def _subset_ap(self, coco_dt: COCO, img_ids: list) -> float:
        """AP over some images only, -1.0 when there are none.

        A separate evaluation restricted to `img_ids`: pycocotools'
        `accumulate(p)` cannot take a subset of the evaluated images.
        """
        if not img_ids:
            return -1.0
        coco_eval = self._coco_eval(coco_dt)
        coco_eval.params.imgIds = list(img_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        # (T, R, K, A, M): every threshold, area range "all", 20 per image.
        precision = coco_eval.eval["precision"][:, :, :, 0, -1]
        valid = precision[precision > -1]
        return float(valid.mean()) if valid.size else -1.0
