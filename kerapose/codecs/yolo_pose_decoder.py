"""YOLO-Pose post-processing: decode, score, greedy NMS, padded output.

Shapes: B batch, R anchor rows over all levels, F = 5 + nc + 3K fields
per row, k candidates kept for NMS, D = `max_detections`, K keypoints.
"""

from keras import ops

from kerapose.api_export import kerapose_export


def _check_anchors(anchors, strides):
    strides = [int(s) for s in strides]
    anchors = [[[float(v) for v in wh] for wh in level] for level in anchors]
    if not strides or len(anchors) != len(strides):
        raise ValueError(
            "`anchors` needs one list of (w, h) pairs per stride. Received "
            f"{len(anchors)} anchor levels for strides {strides}."
        )
    counts = {len(level) for level in anchors}
    pairs = [wh for level in anchors for wh in level]
    if len(counts) != 1 or 0 in counts or any(len(wh) != 2 for wh in pairs):
        raise ValueError(
            "`anchors` must hold the same number of (w, h) pairs at every "
            f"level. Received: {anchors}"
        )
    if min(strides) <= 0 or min(v for wh in pairs for v in wh) <= 0:
        raise ValueError(
            "Strides and anchor sizes must be positive. Received strides "
            f"{strides}, anchors {anchors}"
        )
    return anchors, strides


@kerapose_export("kerapose.codecs.YOLOPoseDecoder")
class YOLOPoseDecoder:
    """Raw YOLO-Pose levels -> people: boxes, scores and keypoints.

    The official post-processing of YOLO-Pose (Maji et al., CVPR-W 2022):
    every anchor row is decoded (`decode_levels`), scored obj * cls, and
    the rows above `score_threshold` go through class-agnostic greedy NMS
    on their boxes (a box is dropped when its IoU with a kept,
    higher-scored box exceeds `iou_threshold`), each keeping its keypoints.

    Static shapes throughout, so it jits on JAX, traces on TensorFlow and
    exports to TFLite builtin operators: the `pre_nms_top_k` best rows are
    taken first, then the exact greedy result is found as the fixed point
    of "keep a row unless a kept, higher-scored row overlaps it", iterated
    on the whole IoU matrix until nothing changes (each pass settles at
    least one more row, and a real image needs a handful). Output rows are
    in score order, padded with zeros (score 0) to `max_detections`.

    The result equals NMS over all rows as long as fewer than
    `pre_nms_top_k` rows pass the threshold, or the best `pre_nms_top_k`
    already hold `max_detections` survivors.

    Args:
        anchors: per level, the (w, h) anchor sizes in input pixels.
        strides: per level, input pixels per grid cell.
        num_keypoints: int. K. Defaults to `17`.
        score_threshold: float. Lowest obj * cls kept (exclusive).
            Defaults to `0.25`.
        iou_threshold: float. NMS IoU threshold. Defaults to `0.65`.
        max_detections: int. D, people returned per image. Defaults to
            `100`.
        pre_nms_top_k: int. Best-scored rows that enter NMS. Defaults to
            `1000`.
    """

    def __init__(
        self,
        anchors,
        strides,
        num_keypoints=17,
        score_threshold=0.25,
        iou_threshold=0.65,
        max_detections=100,
        pre_nms_top_k=1000,
    ):
        self.anchors, self.strides = _check_anchors(anchors, strides)
        if int(num_keypoints) < 1:
            raise ValueError(
                f"`num_keypoints` must be >= 1. Received: {num_keypoints}"
            )
        for name, value in (
            ("score_threshold", score_threshold),
            ("iou_threshold", iou_threshold),
        ):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(
                    f"`{name}` must be in [0, 1]. Received: {value}"
                )
        if int(max_detections) < 1 or int(pre_nms_top_k) < int(max_detections):
            raise ValueError(
                "`max_detections` must be >= 1 and `pre_nms_top_k` >= "
                f"`max_detections`. Received: {max_detections}, "
                f"{pre_nms_top_k}"
            )
        self.num_keypoints = int(num_keypoints)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.pre_nms_top_k = int(pre_nms_top_k)

    @property
    def num_fields(self):
        """F for one class: box 4, obj, cls, then (x, y, conf) per keypoint."""
        return 6 + 3 * self.num_keypoints

    def __call__(self, raw_levels, score_threshold=None, iou_threshold=None):
        """Decodes raw head levels and runs NMS.

        Args:
            raw_levels: list of (B, ny, nx, na, F) logits, one per stride.
            score_threshold, iou_threshold: `None` (the configured ones),
                or floats / scalar tensors for this call (tensors let one
                compiled function serve any threshold).

        Returns:
            dict of `boxes` (B, D, 4) `[x1, y1, x2, y2]` input pixels,
            `scores` (B, D), `keypoints` (B, D, K, 2) input pixels,
            `keypoint_scores` (B, D, K) and `num_detections` (B,) int32.
        """
        # Imported here: the models package imports the codecs.
        from kerapose.models.yolo_pose.yolo_pose_decode import decode_levels

        raw_levels = list(raw_levels)
        if len(raw_levels) != len(self.strides):
            raise ValueError(
                f"Expected {len(self.strides)} raw levels (strides "
                f"{self.strides}); received {len(raw_levels)}."
            )
        for level in raw_levels:
            self._check_fields(level.shape, "raw level", 5)
        decoded = decode_levels(raw_levels, self.anchors, self.strides)
        return self.nms(decoded, score_threshold, iou_threshold)

    def _check_fields(self, shape, what, rank):
        extra = shape[-1] - 5 - 3 * self.num_keypoints if shape[-1] else 0
        if len(shape) != rank or extra < 1:
            raise ValueError(
                f"A {what} must have rank {rank} and 5 + classes + 3 * "
                f"{self.num_keypoints} fields in its last axis (at least "
                f"{self.num_fields}); received shape {tuple(shape)}. Is "
                "`num_keypoints` the model's?"
            )

    def nms(self, decoded, score_threshold=None, iou_threshold=None):
        """NMS on decoded rows (B, R, F): centre-size boxes in input
        pixels, obj, cls, then (x, y, conf) per keypoint. Thresholds and
        the returned dict as in `__call__`."""
        if score_threshold is None:
            score_threshold = self.score_threshold
        if iou_threshold is None:
            iou_threshold = self.iou_threshold
        decoded = ops.convert_to_tensor(decoded)
        self._check_fields(decoded.shape, "decoded batch", 3)
        num_classes = decoded.shape[-1] - 5 - 3 * self.num_keypoints
        scores = decoded[..., 4] * ops.max(
            decoded[..., 5 : 5 + num_classes], axis=-1
        )
        k = min(decoded.shape[1], self.pre_nms_top_k)
        scores, index = ops.top_k(scores, k)
        rows = ops.take_along_axis(decoded, index[..., None], axis=1)
        boxes = ops.concatenate(
            [rows[..., :2] - rows[..., 2:4] * 0.5,
             rows[..., :2] + rows[..., 2:4] * 0.5],
            axis=-1,
        )  # fmt: skip
        keep = greedy_nms(boxes, scores > score_threshold, iou_threshold)
        return self._gather_kept(
            keep, scores, boxes, rows[..., 5 + num_classes :], k
        )

    def _gather_kept(self, keep, scores, boxes, keypoints, k):
        """The first D kept rows (in score order), zero-padded."""
        d = min(self.max_detections, k)
        # Kept rows ranked by position; top_k of the key picks them in order.
        position = ops.cast(k - ops.arange(k), scores.dtype)
        key = ops.where(keep, position, ops.zeros_like(position))
        key, pick = ops.top_k(key, d)
        found = ops.cast(key > 0, scores.dtype)

        def take(x):
            x = ops.take_along_axis(x, pick[..., None], axis=1)
            # where, not a product: padding is +0.0, never -0.0.
            return ops.where(found[..., None] > 0, x, ops.zeros_like(x))

        keypoints = take(keypoints)
        b = ops.shape(keypoints)[0]
        keypoints = ops.reshape(keypoints, (b, d, self.num_keypoints, 3))
        out = {
            "boxes": take(boxes),
            "scores": take(scores[..., None])[..., 0],
            "keypoints": keypoints[..., :2],
            "keypoint_scores": keypoints[..., 2],
        }
        pad = self.max_detections - d
        if pad:
            out = {
                name: ops.pad(v, [[0, 0], [0, pad]] + [[0, 0]] * (v.ndim - 2))
                for name, v in out.items()
            }
        out["num_detections"] = ops.cast(ops.sum(found, axis=1), "int32")
        return out

    def get_config(self):
        return {
            "anchors": [list(map(list, level)) for level in self.anchors],
            "strides": list(self.strides),
            "num_keypoints": self.num_keypoints,
            "score_threshold": self.score_threshold,
            "iou_threshold": self.iou_threshold,
            "max_detections": self.max_detections,
            "pre_nms_top_k": self.pre_nms_top_k,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def overlaps(boxes, iou_threshold):
    """(B, k, 4) `[x1, y1, x2, y2]` -> (B, k, k) bool, IoU > threshold.

    Compared as `inter > threshold * union`, without a division: no NaN
    for empty boxes, and nothing for an int8 converter to quantize into a
    division by zero.
    """
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    area = ops.maximum(x2 - x1, 0.0) * ops.maximum(y2 - y1, 0.0)
    w = ops.minimum(x2[:, :, None], x2[:, None, :]) - ops.maximum(
        x1[:, :, None], x1[:, None, :]
    )
    h = ops.minimum(y2[:, :, None], y2[:, None, :]) - ops.maximum(
        y1[:, :, None], y1[:, None, :]
    )
    inter = ops.maximum(w, 0.0) * ops.maximum(h, 0.0)
    union = area[:, :, None] + area[:, None, :] - inter
    return inter > iou_threshold * union


def greedy_nms(boxes, candidates, iou_threshold):
    """Exact greedy NMS of rows sorted by descending score.

    Row i survives iff it is a candidate and no surviving row j < i has
    IoU > `iou_threshold` with it. That rule has one solution; iterating
    it from "every candidate survives" fixes at least the first t rows
    after t passes, and stopping when a pass changes nothing returns it.

    Args:
        boxes: (B, k, 4) `[x1, y1, x2, y2]`, rows sorted by score.
        candidates: (B, k) bool, rows above the score threshold.
        iou_threshold: float.

    Returns:
        (B, k) bool, the surviving rows.
    """
    k = boxes.shape[1]
    earlier = ops.arange(k)[:, None] < ops.arange(k)[None, :]
    # suppresses[b, j, i]: row j, if kept, removes row i.
    suppresses = ops.logical_and(overlaps(boxes, iou_threshold), earlier[None])

    def step(keep):
        hit = ops.any(ops.logical_and(keep[:, :, None], suppresses), axis=1)
        return ops.logical_and(candidates, ops.logical_not(hit))

    def cond(keep, changed):
        return changed

    def body(keep, changed):
        new = step(keep)
        return new, ops.any(ops.not_equal(new, keep))

    keep, _ = ops.while_loop(
        cond, body, (candidates, ops.convert_to_tensor(True)), k + 1
    )
    return keep
