"""Tracking people across video frames by pose (OKS) or box (IoU) overlap.

NumPy and SciPy only. Shape letters: N people in the new frame, T live
tracks, K keypoints.
"""

import dataclasses

import numpy as np
from scipy.optimize import linear_sum_assignment

from kerapose.data.keypoint_specs import KeypointSpec
from kerapose.data.keypoint_specs import get_keypoint_spec
from kerapose.data.keypoint_specs import spec_for_num_keypoints
from kerapose.eval.functional import compute_oks

MATCHES = ("iou", "oks")


@dataclasses.dataclass
class _Track:
    track_id: int
    keypoints: np.ndarray  # (K, 2)
    keypoint_scores: np.ndarray  # (K,)
    box: np.ndarray  # (4,) x, y, w, h
    missed: int = 0  # consecutive frames without a match


def box_iou(boxes_a, boxes_b):
    """Pairwise IoU of (x, y, w, h) boxes.

    Args:
        boxes_a: (T, 4) boxes.
        boxes_b: (N, 4) boxes.

    Returns:
        (T, N) float64 IoU; 0 where the union is empty.
    """
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    a_lo, a_hi = a[:, None, :2], a[:, None, :2] + a[:, None, 2:]
    b_lo, b_hi = b[None, :, :2], b[None, :, :2] + b[None, :, 2:]
    inter = np.prod(
        np.clip(np.minimum(a_hi, b_hi) - np.maximum(a_lo, b_lo), 0, None),
        axis=-1,
    )
    area_a = np.prod(np.clip(a[:, 2:], 0, None), axis=-1)[:, None]
    area_b = np.prod(np.clip(b[:, 2:], 0, None), axis=-1)[None, :]
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _oks_area(box, keypoints):
    """OKS scale of a track: its box area, else its keypoints' extent."""
    area = float(box[2] * box[3])
    if area > 0:
        return area
    extent = keypoints.max(axis=0) - keypoints.min(axis=0)
    return max(float(extent[0] * extent[1]), 1.0)


class PoseTracker:
    """Gives the people of successive video frames stable identities.

    Each frame's people are matched to the live tracks by optimal
    assignment (Hungarian algorithm) on their similarity, OKS of the
    keypoints or IoU of the boxes; only pairs with a similarity above
    `threshold` can match. Unmatched people start new tracks with new ids
    (0, 1, 2, ..., never reused); a track unmatched for more than
    `max_age` consecutive frames is dropped, so a person gone that long
    comes back with a new id.

    OKS follows the COCO formula with the track's box area `w * h` as the
    scale (the box is the track's last one), so it is invariant to the
    image size; IoU needs no keypoints.

    Args:
        match: str. `"oks"` or `"iou"`. Defaults to `"oks"`.
        threshold: float in [0, 1). Least similarity (exclusive) of a
            match. Defaults to 0.3.
        max_age: int >= 0. Frames a track may go unmatched and still be
            matched again. Defaults to 30.
        sigmas: OKS per-keypoint constants: a (K,) array, a
            `KeypointSpec` or a spec name (`"coco_17"`). None takes the
            sigmas of the first built-in spec with the frame's keypoint
            count (COCO's for 17, CrowdPose's for 14: pass AIC's
            yourself). Unused by IoU. Defaults to None.
        keypoint_threshold: float or None. When set, OKS counts a joint
            only when its score is above this in both poses. Defaults to
            None (every joint counts).

    Example:

    ```python
    tracker = kerapose.inference.PoseTracker()
    for frame in frames:
        result = tracker.update(predict_image(model, frame))
        print(result.track_ids)
    ```
    """

    def __init__(
        self,
        match="oks",
        threshold=0.3,
        max_age=30,
        sigmas=None,
        keypoint_threshold=None,
    ):
        if match not in MATCHES:
            raise ValueError(
                f"`match` must be one of {MATCHES}. Received: {match!r}"
            )
        if not 0.0 <= float(threshold) < 1.0:
            raise ValueError(
                f"`threshold` must be in [0, 1). Received: {threshold!r}"
            )
        if int(max_age) != max_age or max_age < 0:
            raise ValueError(
                "`max_age` must be a non-negative integer (frames). "
                f"Received: {max_age!r}"
            )
        self.match = match
        self.threshold = float(threshold)
        self.max_age = int(max_age)
        self.keypoint_threshold = keypoint_threshold
        self._sigmas = self._given_sigmas(sigmas)
        self._next_id = 0
        self.reset()

    @staticmethod
    def _given_sigmas(sigmas):
        if sigmas is None:
            return None
        if isinstance(sigmas, (str, KeypointSpec)):
            return np.asarray(
                get_keypoint_spec(sigmas).require_sigmas(), np.float64
            )
        sigmas = np.asarray(sigmas, np.float64)
        if sigmas.ndim != 1 or not np.all(sigmas > 0):
            raise ValueError(
                "`sigmas` must be a 1-D array of positive per-keypoint OKS "
                f"constants. Received shape {sigmas.shape}."
            )
        return sigmas

    def reset(self):
        """Forgets every track; ids keep counting up from where they were."""
        self._tracks = []
        self._num_keypoints = None

    @property
    def num_tracks(self):
        """Number of live tracks (matched or within `max_age`)."""
        return len(self._tracks)

    def update(self, result):
        """Matches a frame's people to the tracks.

        Args:
            result: `PoseResult` of the next frame.

        Returns:
            A copy of `result` with `track_ids` (N,) int64 set.
        """
        keypoints, scores, boxes = self._check(result)
        n = len(keypoints)
        sim = self._similarity(keypoints, scores, boxes)
        matched_tracks, matched_people = self._assign(sim)

        ids = np.full(n, -1, np.int64)
        seen = set()
        for t, p in zip(matched_tracks, matched_people):
            track = self._tracks[t]
            track.keypoints = keypoints[p]
            track.keypoint_scores = scores[p]
            track.box = boxes[p]
            track.missed = 0
            ids[p] = track.track_id
            seen.add(t)
        for t, track in enumerate(self._tracks):
            if t not in seen:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_age]
        for p in np.flatnonzero(ids < 0):
            ids[p] = self._next_id
            self._tracks.append(
                _Track(self._next_id, keypoints[p], scores[p], boxes[p])
            )
            self._next_id += 1
        return dataclasses.replace(result, track_ids=ids)

    def _check(self, result):
        n = len(result.keypoints)
        if n == 0:
            k = self._num_keypoints or 0
            return (
                np.zeros((0, k, 2)),
                np.zeros((0, k)),
                np.zeros((0, 4)),
            )
        keypoints = np.asarray(result.keypoints, np.float64)
        scores = np.asarray(result.keypoint_scores, np.float64)
        boxes = np.asarray(result.boxes, np.float64)
        if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
            raise ValueError(
                "`result.keypoints` must have shape (N, K, 2). "
                f"Received: {keypoints.shape}"
            )
        k = keypoints.shape[1]
        if scores.shape != (n, k):
            raise ValueError(
                f"`result.keypoint_scores` must have shape ({n}, {k}) to "
                f"match the keypoints. Received: {scores.shape}"
            )
        if boxes.shape != (n, 4):
            raise ValueError(
                f"`result.boxes` must have shape ({n}, 4), (x, y, w, h). "
                f"Received: {boxes.shape}"
            )
        if not (np.all(np.isfinite(keypoints)) and np.all(np.isfinite(boxes))):
            raise ValueError(
                "`result.keypoints` and `result.boxes` must be finite."
            )
        if self._num_keypoints not in (None, k):
            raise ValueError(
                f"The tracks have {self._num_keypoints} keypoints but this "
                f"frame has {k}: use one tracker per model, or `reset()`."
            )
        if self.match == "oks":
            self._sigmas_for(k)  # fails at the first frame, not the second
        self._num_keypoints = k
        return keypoints, scores, boxes

    def _similarity(self, keypoints, scores, boxes):
        """(T, N) similarity of the live tracks and the frame's people."""
        t, n = len(self._tracks), len(keypoints)
        if t == 0 or n == 0:
            return np.zeros((t, n))
        if self.match == "iou":
            return box_iou(np.stack([tr.box for tr in self._tracks]), boxes)
        sigmas = self._sigmas_for(keypoints.shape[1])
        people = np.concatenate([keypoints, scores[..., None]], axis=-1)
        sim = np.empty((t, n))
        for i, track in enumerate(self._tracks):
            reference = np.concatenate(
                [track.keypoints, track.keypoint_scores[:, None]], axis=-1
            )
            area = _oks_area(track.box, track.keypoints)
            sim[i] = compute_oks(
                reference,
                people,
                np.full(n, area),
                sigmas,
                vis_thr=self.keypoint_threshold,
            )
        return sim

    def _sigmas_for(self, num_keypoints):
        sigmas = self._sigmas
        if sigmas is None:
            spec = spec_for_num_keypoints(num_keypoints)
            if spec is None or spec.sigmas is None:
                raise ValueError(
                    "No built-in keypoint spec with OKS sigmas has "
                    f"{num_keypoints} keypoints: pass `sigmas=` (one per "
                    "keypoint) or use `match='iou'`."
                )
            sigmas = np.asarray(spec.sigmas, np.float64)
        if len(sigmas) != num_keypoints:
            raise ValueError(
                f"`sigmas` has {len(sigmas)} entries but the frame has "
                f"{num_keypoints} keypoints."
            )
        return sigmas

    def _assign(self, sim):
        """Optimal one-to-one matching over the pairs above the threshold."""
        if sim.size == 0:
            return np.zeros(0, int), np.zeros(0, int)
        valid = sim > self.threshold
        # Invalid pairs weigh 0, so maximising the total maximises it over
        # the valid pairs alone; those picked anyway are dropped after.
        rows, cols = linear_sum_assignment(np.where(valid, sim, 0.0), True)
        keep = valid[rows, cols]
        return rows[keep], cols[keep]
