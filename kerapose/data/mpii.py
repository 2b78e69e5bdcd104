"""MPII single-person pose: the HRNet list format and PCKh evaluation.

The annotation file is the JSON list the official HRNet code and mmpose
use (`annot/train.json`, `annot/valid.json`): one entry per person,

    {"image": "005808361.jpg", "center": [966.0, 340.0], "scale": 4.72,
     "joints": [[804.0, 711.0], ...], "joints_vis": [1, 1, ...]}

with the 16 joints in MPII order (`kerapose.data.keypoint_specs.MPII_16`)
and `scale` the person's height / 200 px. Coordinates are 1-based (the
MATLAB release converted as is); unlabelled joints are `[-1, -1]` with
`joints_vis` 0. Entries of the test split have no joints.

Shape letters: N people, K = 16 joints.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np

from kerapose.data.coco import PIXEL_STD
from kerapose.data.keypoint_specs import MPII_16
from kerapose.eval.functional import head_size_from_keypoints
from kerapose.eval.functional import pckh
from kerapose.inference.image_io import read_image
from kerapose.inference.top_down import crop_people
from kerapose.inference.top_down import keypoints_to_image
from kerapose.inference.top_down import predict_heatmaps

__all__ = ["evaluate_mpii_pckh", "load_mpii_instances"]

NUM_JOINTS = 16
# The official MPII table leaves pelvis and thorax out of the mean.
MEAN_EXCLUDES = (6, 7)
# The official table's body parts, (right, left) joint pairs averaged.
_PARTS = {
    "Head": (9,),
    "Shoulder": (12, 13),
    "Elbow": (11, 14),
    "Wrist": (10, 15),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ankle": (0, 5),
}


def load_mpii_instances(
    json_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    aspect_ratio: float = 1.0,
) -> dict[str, np.ndarray]:
    """Reads an MPII list-format file into top-down person instances.

    Follows the official HRNet `MPIIDataset`: the centre moves down by
    `15 * scale` px and the scale grows by 1.25 (the MPII box is tight
    around the person, this keeps the limbs in the crop), then the centre
    and the joints are shifted by -1 from MATLAB's 1-based pixels to
    0-based ones. The official input is square (256x256); for another
    `aspect_ratio` the square box is enlarged along its short side, as
    :func:`~kerapose.data.coco.box_to_center_scale` does for COCO boxes.

    The image files are not opened here.

    Args:
        json_file: The MPII annotation list.
        image_dir: Folder of the images.
        aspect_ratio: Input width / height of the model. Defaults to `1.0`.

    Returns:
        A dict of arrays, the layout of
        :func:`~kerapose.data.coco.load_coco_instances` (so
        :func:`~kerapose.data.pipelines.make_top_down_dataset` takes it
        with the `MPII_16` spec): `image_path` (N,), `image_id` (N,, the
        index of the image's first person), `annotation_id` (N,, the entry
        index), `center` (N, 2), `scale` (N, 2), `keypoints` (N, K, 2,
        0-based pixels, 0 where unlabelled), `visibility` (N, K, 1 or 0),
        `bbox` (N, 4, the padded box `x, y, w, h`), `area` (N,) and
        `score` (N,, ones).

    Raises:
        ValueError: The file is not valid JSON, not a list, or an entry
            lacks a field or has a malformed one (the message names it).
    """
    json_file = os.fspath(json_file)
    try:
        with open(json_file, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{json_file}: not valid JSON ({err}).") from err
    if not isinstance(data, list):
        raise ValueError(
            f"{json_file}: expected a JSON list of MPII entries (image, "
            f"center, scale, joints, joints_vis), got {type(data).__name__}."
        )
    rows = [_parse_entry(e, i, json_file) for i, e in enumerate(data)]
    n = len(rows)
    first_index = {}
    for i, row in enumerate(rows):
        first_index.setdefault(row["image"], i)

    center = np.array([r["center"] for r in rows], np.float64).reshape(n, 2)
    side = np.array([r["scale"] for r in rows], np.float64).reshape(n)
    labelled = center[:, 0] != -1  # -1 marks an entry without a box
    # Official HRNet: move the centre down, enlarge, then go 0-based.
    center[:, 1] += np.where(labelled, 15.0 * side, 0.0)
    side = np.where(labelled, side * 1.25, side)
    center -= 1.0
    width, height = side.copy(), side.copy()
    if aspect_ratio < 1.0:
        height = side / aspect_ratio
    elif aspect_ratio > 1.0:
        width = side * aspect_ratio
    scale = np.stack([width, height], axis=1)

    joints = np.array([r["joints"] for r in rows], np.float64)
    visibility = np.array([r["joints_vis"] for r in rows], np.float32)
    joints = joints.reshape(n, NUM_JOINTS, 2) - 1.0
    visibility = visibility.reshape(n, NUM_JOINTS)
    joints = np.where(visibility[..., None] > 0, joints, 0.0)
    size = scale * PIXEL_STD
    return {
        "image_path": np.array(
            [os.path.join(os.fspath(image_dir), r["image"]) for r in rows],
            dtype=np.str_,
        ).reshape(n),
        "image_id": np.array(
            [first_index[r["image"]] for r in rows], np.int64
        ).reshape(n),
        "annotation_id": np.arange(n, dtype=np.int64),
        "center": center.astype(np.float32),
        "scale": scale.astype(np.float32),
        "keypoints": joints.astype(np.float32),
        "visibility": visibility,
        "bbox": np.concatenate([center - size / 2, size], axis=1).astype(
            np.float32
        ),
        "area": np.prod(size, axis=1).astype(np.float32),
        "score": np.ones(n, np.float32),
    }


def _parse_entry(entry, index, json_file):
    where = f"{json_file}: entry {index}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not an object.")
    for key in ("image", "center", "scale"):
        if key not in entry:
            raise ValueError(f"{where} has no '{key}'.")
    if not isinstance(entry["image"], str) or not entry["image"]:
        raise ValueError(f"{where}: 'image' must be a file name.")
    center = _numbers(entry["center"], (2,), f"{where}: 'center'")
    scale = _numbers(entry["scale"], (), f"{where}: 'scale'")
    if not scale > 0:
        raise ValueError(f"{where}: 'scale' must be positive, got {scale}.")
    if "joints" in entry or "joints_vis" in entry:
        joints = _numbers(
            entry.get("joints"), (NUM_JOINTS, 2), f"{where}: 'joints'"
        )
        vis = _numbers(
            entry.get("joints_vis"), (NUM_JOINTS,), f"{where}: 'joints_vis'"
        )
    else:  # the test split: boxes only
        joints = np.zeros((NUM_JOINTS, 2))
        vis = np.zeros(NUM_JOINTS)
    return {
        "image": entry["image"],
        "center": center,
        "scale": float(scale),
        "joints": joints,
        "joints_vis": (vis > 0).astype(np.float32),
    }


def _numbers(value, shape, where):
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = None
    # Strings would convert to floats silently: only numbers pass.
    if arr is not None and arr.dtype.kind in "biuf":
        arr = arr.astype(np.float64)
    else:
        arr = None
    if arr is None or arr.shape != shape or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{where} must be finite numbers of shape {shape}, got {value!r}."
        )
    return arr


def evaluate_mpii_pckh(
    model,
    json_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    flip_test: bool = True,
    threshold: float = 0.5,
    batch_size: int = 32,
) -> dict:
    """PCKh of a top-down estimator on an MPII list-format file.

    Each person is cropped from its (official, enlarged) centre and scale,
    the heatmaps are decoded and mapped back to the image, and PCKh is
    computed over the labelled joints with
    :func:`~kerapose.eval.functional.pckh`.

    Head size: the official MPII PCKh uses 0.6 x the diagonal of the
    annotated head box, which is in the MATLAB release (`gt_valid.mat`)
    but not in the JSON list. This uses the head-top to upper-neck
    distance instead
    (:func:`~kerapose.eval.functional.head_size_from_keypoints`), a
    length of the same order, so the numbers are good for comparing
    models with each other but not with published MPII PCKh. People
    without both head joints labelled have no head size and are left out
    (counted in `num_skipped`).

    Args:
        model: `kerapose.models.TopDownPoseEstimator` with 16 keypoints.
        json_file: MPII annotation list.
        image_dir: Folder of its images.
        flip_test: Average with mirrored crops. Defaults to `True`.
        threshold: Fraction of the head size, `0.5` for PCKh@0.5.
        batch_size: Crops per forward pass.

    Returns:
        dict: `mean` (float, the official mean, which leaves out pelvis and
        thorax), `per_joint` ({joint name: float}, NaN for a joint never
        labelled), `visible_count` ({joint name: int}), `parts` (the
        official table: Head, Shoulder, ... Ankle, right and left
        averaged), `threshold`, `num_instances` (people scored) and
        `num_skipped`.

    Raises:
        ValueError: A model without 16 keypoints, or a malformed file.
    """
    if getattr(model, "num_keypoints", None) != MPII_16.num_keypoints:
        raise ValueError(
            "MPII PCKh needs a model with 16 keypoints (MPII order), e.g. "
            "kerapose.zoo.load(name, num_keypoints=16); this one has "
            f"{getattr(model, 'num_keypoints', None)}."
        )
    input_size = tuple(model.input_shape[1:3])
    if None in input_size:
        input_size = tuple(model.codec.input_size)
    instances = load_mpii_instances(
        json_file, image_dir, aspect_ratio=input_size[1] / input_size[0]
    )
    gt = instances["keypoints"]
    visible = instances["visibility"] > 0
    head_top, neck = 9, 8
    has_head = visible[:, head_top] & visible[:, neck]
    keep = np.flatnonzero(has_head)
    flip_indices = MPII_16.flip_indices if flip_test else None
    preds = np.zeros_like(gt)
    cache = {}
    for start in range(0, len(keep), batch_size):
        idx = keep[start : start + batch_size]
        crops = []
        for i in idx:
            path = instances["image_path"][i]
            if path not in cache:
                # People of one image are listed together: keep just one.
                cache = {path: read_image(path)}
            crops.append(
                crop_people(
                    cache[path],
                    instances["center"][i : i + 1],
                    instances["scale"][i : i + 1],
                    input_size,
                )
            )
        heatmaps = predict_heatmaps(
            model, np.concatenate(crops), flip_indices, batch_size
        )
        keypoints, _ = model.codec.decode(heatmaps)
        preds[idx] = keypoints_to_image(
            keras.ops.convert_to_numpy(keypoints),
            instances["center"][idx],
            instances["scale"][idx],
            input_size,
        )
    heads = head_size_from_keypoints(gt[keep], head_top, neck)
    # A degenerate head segment (both joints on one pixel) cannot scale.
    ok = heads > 0
    keep, heads = keep[ok], heads[ok]
    result = pckh(
        preds[keep],
        gt[keep],
        visible[keep],
        heads,
        threshold=threshold,
        joint_names=MPII_16.keypoint_names,
        exclude_from_mean=MEAN_EXCLUDES,
    )
    per_joint = list(result["per_joint"].values())
    result["parts"] = {
        part: float(np.mean([per_joint[j] for j in joints]))
        for part, joints in _PARTS.items()
    }
    result["threshold"] = float(threshold)
    result["num_instances"] = int(len(keep))
    result["num_skipped"] = int(len(gt) - len(keep))
    return result
