"""NumPy keypoint metrics: OKS, OKS-NMS, top-down rescoring and PCKh.

Shape letters used throughout: N instances, K keypoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "COCO_SIGMAS",
    "CROWDPOSE_SIGMAS",
    "MPII_JOINT_NAMES",
    "compute_oks",
    "head_size_from_keypoints",
    "oks_nms",
    "pckh",
    "rescore",
]

# Per-keypoint OKS falloff constants of the COCO keypoint benchmark.
# fmt: off
COCO_SIGMAS = np.array([
    0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07,
    1.07, 0.87, 0.87, 0.89, 0.89,
]) / 10.0

# CrowdPose order: shoulders, elbows, wrists, hips, knees, ankles, head, neck.
CROWDPOSE_SIGMAS = np.array([
    0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89,
    0.79, 0.79,
]) / 10.0
# fmt: on
# Shared module constants: make accidental in-place edits fail loudly.
COCO_SIGMAS.setflags(write=False)
CROWDPOSE_SIGMAS.setflags(write=False)

MPII_JOINT_NAMES = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)


def _dim_text(want) -> str:
    if want is None:
        return "?"
    if isinstance(want, tuple):
        return " or ".join(str(w) for w in want)
    return str(want)


def _float_array(x: ArrayLike, name: str, shape: tuple) -> np.ndarray:
    """Converts `x` to float64 and checks it against `shape`.

    `shape` entries are ints (exact size), None (any size) or a tuple of
    allowed sizes.
    """
    arr = np.asarray(x, dtype=np.float64)
    ok = arr.ndim == len(shape)
    if ok:
        for size, want in zip(arr.shape, shape):
            if want is None:
                continue
            allowed = want if isinstance(want, tuple) else (want,)
            if size not in allowed:
                ok = False
    if not ok:
        pretty = ", ".join(_dim_text(s) for s in shape)
        raise ValueError(f"{name} must have shape ({pretty}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def compute_oks(
    kpts_a: ArrayLike,
    kpts_b_batch: ArrayLike,
    area_b: ArrayLike,
    sigmas: ArrayLike,
    vis_thr: float | None = None,
) -> np.ndarray:
    """Object keypoint similarity between one instance and N others.

    OKS = mean over the included joints of
    `exp(-d^2 / (2 * area * (2 * sigma)^2))`, `d` being the distance between
    matching joints, as in the COCO keypoint benchmark.

    Args:
        kpts_a: (K, 3) keypoints `x, y, score` of the instance compared.
        kpts_b_batch: (N, K, 3) keypoints of the N other instances.
        area_b: (N,) object area (the squared OKS scale) used for each pair.
        sigmas: (K,) per-keypoint OKS constants, e.g. `COCO_SIGMAS`.
        vis_thr: If given, a joint counts only when its score is above
            `vis_thr` in both instances; None counts every joint.

    Returns:
        (N,) float64 OKS values in [0, 1]; 0 for a pair with no joint
        counted.

    Raises:
        ValueError: On mismatched shapes or non-finite values.
    """
    b = np.asarray(kpts_b_batch, dtype=np.float64)
    if b.ndim != 3 or b.shape[-1] != 3:
        raise ValueError(
            f"kpts_b_batch must have shape (N, K, 3), got {b.shape}"
        )
    n, k = b.shape[:2]
    b = _float_array(b, "kpts_b_batch", (n, k, 3))
    a = _float_array(kpts_a, "kpts_a", (k, 3))
    area = _float_array(area_b, "area_b", (n,))
    sig = _float_array(sigmas, "sigmas", (k,))

    var = (2.0 * sig) ** 2
    sq_dist = np.sum((b[..., :2] - a[None, :, :2]) ** 2, axis=-1)
    e = sq_dist / var[None, :] / (area[:, None] + np.spacing(1)) / 2.0
    if vis_thr is None:
        mask = np.ones((n, k), dtype=bool)
    else:
        mask = (a[None, :, 2] > vis_thr) & (b[..., 2] > vis_thr)
    counted = mask.sum(axis=1)
    total = np.sum(np.exp(-e) * mask, axis=1)
    return np.where(counted > 0, total / np.maximum(counted, 1), 0.0)


def oks_nms(
    keypoints: ArrayLike,
    scores: ArrayLike,
    areas: ArrayLike,
    sigmas: ArrayLike,
    threshold: float = 0.9,
    vis_thr: float | None = None,
    area_mode: str = "mean",
) -> np.ndarray:
    """Greedy OKS non-maximum suppression (HRNet / mmpose `oks_nms`).

    Repeatedly keeps the highest-scoring remaining instance and drops every
    remaining instance whose OKS with it is above `threshold`. Equal scores
    are visited from the highest index down, the order the HRNet / mmpose
    evaluation gets from an ascending sort read backwards. A stable sort
    makes that order the same on every machine (numpy's default sort is
    not stable: with its SIMD kernels even four tied scores can come out
    in another order).

    Two deliberate points against the HRNet reference code:
    its OKS scale is the mean of the two instances' areas, which
    `area_mode="mean"` (the default) reproduces; `area_mode="reference"`
    uses the kept instance's area alone. And its `in_vis_thre` filter, through
    a Python `and` of two lists, ends up testing only the candidate's
    scores; here `vis_thr` requires both joints above the threshold, as
    intended there and as mmpose does.

    Args:
        keypoints: (N, K, 3) keypoints `x, y, score`.
        scores: (N,) instance scores.
        areas: (N,) instance areas (e.g. the person box area).
        sigmas: (K,) per-keypoint OKS constants.
        threshold: Instances with OKS above this are suppressed.
        vis_thr: Optional joint score threshold, see `compute_oks`.
        area_mode: "mean" or "reference", see above.

    Returns:
        (M,) int64 indices of the kept instances, highest score first.

    Raises:
        ValueError: On mismatched shapes, non-finite values or an unknown
            `area_mode`.
    """
    if area_mode not in ("mean", "reference"):
        raise ValueError(
            f"area_mode must be 'mean' or 'reference', got {area_mode!r}"
        )
    kpts = np.asarray(keypoints, dtype=np.float64)
    if kpts.ndim != 3 or kpts.shape[-1] != 3:
        raise ValueError(
            f"keypoints must have shape (N, K, 3), got {kpts.shape}"
        )
    n = kpts.shape[0]
    kpts = _float_array(kpts, "keypoints", (n, kpts.shape[1], 3))
    score = _float_array(scores, "scores", (n,))
    area = _float_array(areas, "areas", (n,))

    # Ascending and stable, then reversed: ties go highest index first.
    order = np.argsort(score, kind="stable")[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        if rest.size == 0:
            break
        if area_mode == "mean":
            scale = (area[i] + area[rest]) / 2.0
        else:
            scale = np.full(rest.shape, area[i])
        oks = compute_oks(kpts[i], kpts[rest], scale, sigmas, vis_thr)
        order = rest[oks <= threshold]
    return np.asarray(keep, dtype=np.int64)


def rescore(
    keypoint_scores: ArrayLike,
    box_scores: ArrayLike,
    threshold: float = 0.2,
) -> np.ndarray:
    """Top-down instance rescoring of HRNet and mmpose.

    score = mean of the keypoint scores above `threshold` (0 when none is)
    times the detector's box score.

    Args:
        keypoint_scores: (N, K) per-keypoint confidences.
        box_scores: (N,) person detector scores.
        threshold: Keypoint scores must be strictly above this to count.

    Returns:
        (N,) float64 instance scores.

    Raises:
        ValueError: On mismatched shapes or non-finite values.
    """
    kp = np.asarray(keypoint_scores, dtype=np.float64)
    if kp.ndim != 2:
        raise ValueError(
            f"keypoint_scores must have shape (N, K), got {kp.shape}"
        )
    kp = _float_array(kp, "keypoint_scores", (kp.shape[0], None))
    box = _float_array(box_scores, "box_scores", (kp.shape[0],))
    valid = kp > threshold
    count = valid.sum(axis=1)
    total = np.sum(kp * valid, axis=1)
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return mean * box


def head_size_from_keypoints(
    gt: ArrayLike,
    head_top_idx: int = 9,
    neck_idx: int = 8,
) -> np.ndarray:
    """Head segment length, a stand-in for the MPII head size.

    The official MPII PCKh normalises by 0.6 times the diagonal of the
    annotated head box. Files without head boxes (like MPII in the HRNet /
    mmpose list format) cannot reproduce that, so this uses the distance
    between the head-top and upper-neck joints instead. It is an
    approximation of similar magnitude: PCKh computed with it is fine for
    comparing models with each other, but is not comparable with published
    MPII numbers.

    Args:
        gt: (N, K, 2) or (N, K, 3) ground-truth keypoints.
        head_top_idx: Head-top joint index (9 in MPII order).
        neck_idx: Upper-neck joint index (8 in MPII order).

    Returns:
        (N,) float64 head sizes in pixels.

    Raises:
        ValueError: On a wrong shape or joint index.
    """
    g = np.asarray(gt, dtype=np.float64)
    if g.ndim != 3 or g.shape[-1] not in (2, 3):
        raise ValueError(f"gt must have shape (N, K, 2 or 3), got {g.shape}")
    k = g.shape[1]
    for name, idx in (("head_top_idx", head_top_idx), ("neck_idx", neck_idx)):
        if not 0 <= idx < k:
            raise ValueError(f"{name}={idx} is out of range for K={k}")
    seg = g[:, head_top_idx, :2] - g[:, neck_idx, :2]
    return np.linalg.norm(seg, axis=-1)


def pckh(
    pred: ArrayLike,
    gt: ArrayLike,
    visible: ArrayLike,
    head_sizes: ArrayLike,
    threshold: float = 0.5,
    joint_names: Sequence[str] | None = None,
    exclude_from_mean: Sequence[int] = (),
) -> dict:
    """MPII PCKh: share of joints within `threshold` head sizes of the GT.

    A joint is correct when its error is at most `threshold * head_size`
    (`<=`, as in the official MPII script). Only visible joints count.

    Args:
        pred: (N, K, 2) predicted joints (a trailing score column, i.e.
            (N, K, 3), is accepted and ignored).
        gt: (N, K, 2) ground-truth joints, same convention.
        visible: (N, K) bool, the joints that have ground truth.
        head_sizes: (N,) normaliser per instance; officially 0.6 times the
            head-box diagonal, see `head_size_from_keypoints` otherwise.
        threshold: Fraction of the head size, 0.5 for PCKh@0.5.
        joint_names: Optional K names used as keys of `per_joint`.
        exclude_from_mean: Joint indices left out of `mean`; the usual MPII
            table (HRNet, mmpose) leaves out pelvis and thorax, `(6, 7)`.

    Returns:
        A dict with `mean` (float, correct / visible over the joints not
        excluded), `per_joint` ({name or index: float}, NaN for a joint that
        is never visible) and `visible_count` ({name or index: int}).

    Raises:
        ValueError: On mismatched shapes, non-finite values, or a
            non-positive head size for an instance with visible joints.
    """
    p = np.asarray(pred, dtype=np.float64)
    if p.ndim != 3 or p.shape[-1] not in (2, 3):
        raise ValueError(f"pred must have shape (N, K, 2), got {p.shape}")
    n, k = p.shape[:2]
    p = _float_array(p, "pred", (n, k, (2, 3)))[..., :2]
    g = _float_array(gt, "gt", (n, k, (2, 3)))[..., :2]
    vis = np.asarray(visible)
    if vis.shape != (n, k):
        raise ValueError(f"visible must have shape {(n, k)}, got {vis.shape}")
    vis = vis.astype(bool)
    heads = _float_array(head_sizes, "head_sizes", (n,))
    bad = np.flatnonzero((heads <= 0) & vis.any(axis=1))
    if bad.size:
        raise ValueError(
            f"head_sizes must be positive; instances {bad.tolist()} have "
            "visible joints and a head size <= 0"
        )
    if joint_names is not None and len(joint_names) != k:
        raise ValueError(
            f"joint_names has {len(joint_names)} names for K={k} joints"
        )
    keys = list(joint_names) if joint_names is not None else list(range(k))

    err = np.linalg.norm(p - g, axis=-1)
    # Invisible joints may carry a zero head size; keep them out of the
    # division instead of producing warnings.
    safe = np.where(heads > 0, heads, 1.0)
    correct = (err / safe[:, None] <= threshold) & vis
    count = vis.sum(axis=0)
    hits = correct.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(count > 0, hits / count, np.nan)

    in_mean = np.ones(k, dtype=bool)
    in_mean[list(exclude_from_mean)] = False
    total = count[in_mean].sum()
    mean = float(hits[in_mean].sum() / total) if total > 0 else float("nan")
    return {
        "mean": mean,
        "per_joint": {kk: float(v) for kk, v in zip(keys, per_joint)},
        "visible_count": {kk: int(c) for kk, c in zip(keys, count)},
    }
