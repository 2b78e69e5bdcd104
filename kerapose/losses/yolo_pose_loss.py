import math

import keras
import numpy as np
from keras import ops

from kerapose.api_export import kerapose_export

NUM_CLASSES = 1  # person
# Neighbour-cell offsets of the official assignment, in grid cells: the
# cell itself, then left, up, right, down (each taken when the centre lies
# in that half of its cell, g = 0.5).
_OFFSETS = ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (-0.5, 0.0), (0.0, -0.5))
# Per-level objectness balance of the official loss: P3-P5 models use the
# first entry, P3-P7 models the second.
_BALANCE = {3: (4.0, 1.0, 0.4)}
_BALANCE_DEFAULT = (4.0, 1.0, 0.25, 0.06, 0.02)
_IOU_EPS = 1e-7
_OKS_EPS = 1e-9


def _trunc(x):
    # Integer conversion toward zero, as the official cell index does.
    return ops.where(x >= 0, ops.floor(x), ops.ceil(x))


def _bce_with_logits(logits, targets):
    return (
        ops.relu(logits)
        - logits * targets
        + ops.log1p(ops.exp(-ops.abs(logits)))
    )


def complete_iou(box1, box2):
    """CIoU of (..., 4) centre-x, centre-y, w, h boxes, element-wise.

    The official formula: heights get `eps` (1e-7) added, the union and the
    enclosing diagonal too, and the aspect-ratio weight `alpha` carries no
    gradient.
    """
    x1, y1, w1, h1 = (box1[..., i] for i in range(4))
    x2, y2, w2, h2 = (box2[..., i] for i in range(4))
    b1_x1, b1_x2 = x1 - w1 / 2, x1 + w1 / 2
    b1_y1, b1_y2 = y1 - h1 / 2, y1 + h1 / 2
    b2_x1, b2_x2 = x2 - w2 / 2, x2 + w2 / 2
    b2_y1, b2_y2 = y2 - h2 / 2, y2 + h2 / 2
    inter_w = ops.relu(ops.minimum(b1_x2, b2_x2) - ops.maximum(b1_x1, b2_x1))
    inter_h = ops.relu(ops.minimum(b1_y2, b2_y2) - ops.maximum(b1_y1, b2_y1))
    inter = inter_w * inter_h
    w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + _IOU_EPS
    w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + _IOU_EPS
    union = w1 * h1 + w2 * h2 - inter + _IOU_EPS
    iou = inter / union
    cw = ops.maximum(b1_x2, b2_x2) - ops.minimum(b1_x1, b2_x1)
    ch = ops.maximum(b1_y2, b2_y2) - ops.minimum(b1_y1, b2_y1)
    c2 = cw**2 + ch**2 + _IOU_EPS
    rho2 = (
        (b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2
        + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2
    ) / 4
    v = (4 / math.pi**2) * ops.square(ops.arctan(w2 / h2) - ops.arctan(w1 / h1))
    alpha = ops.stop_gradient(v / (v - iou + (1 + _IOU_EPS)))
    return iou - (rho2 / c2 + v * alpha)


def assign_targets(
    boxes, keypoints, valid, anchors, strides, grid_shapes, anchor_t=4.0
):
    """The official YOLO-Pose target assignment on every level, vectorised.

    Every (level, person, anchor, cell) candidate is kept in fixed-size
    tensors with a match mask instead of being filtered, so shapes stay
    static. A person matches an anchor when its (w, h) to anchor ratio r
    has `max(r, 1/r) < anchor_t` on both sides; people with zero or
    negative width or height, or `valid == 0`, match nothing. Each match
    uses the centre's cell and the neighbour left/up/right/down when the
    centre lies in that half of its cell and more than one cell from that
    edge. Targets are in the level's grid units, relative to the cell.

    Shapes: L levels, B batch, P people, K keypoints, A anchors, O = 5
    offsets (own cell, left, up, right, down).

    Args:
        boxes: (B, P, 4) [x1, y1, x2, y2] in input pixels.
        keypoints: (B, P, K, 3) (x, y, v) in input pixels.
        valid: (B, P), 1 for a person, 0 for padding.
        anchors: (L, A, 2) anchor (w, h) in input pixels.
        strides: L strides in input pixels.
        grid_shapes: L (ny, nx) grid sizes.
        anchor_t: float. Anchor ratio threshold.

    Returns:
        dict: `mask` (L, B, P, A, O) float, 1 for a match; `cell` (L, B, P,
        A, O) int32 index (y * nx + x) * A + a into the level's cells;
        `box` (L, B, P, 1, O, 4) centre relative to the cell and w, h;
        `keypoints` (L, B, P, 1, O, K, 2) relative to the cell; `visible`
        (1, B, P, 1, 1, K) float, 1 where v > 0; `area` (L, B, P, 1, 1, 1)
        box w * h.
    """
    dtype = "float32"
    num_levels = len(strides)
    num_anchors = len(anchors[0])

    def per_level(values, rank):
        return ops.reshape(
            ops.convert_to_tensor(values, dtype), (num_levels,) + (1,) * rank
        )

    stride = per_level(strides, 3)
    ny = per_level([g[0] for g in grid_shapes], 2)
    nx = per_level([g[1] for g in grid_shapes], 2)
    boxes = ops.cast(boxes, dtype)[None] / stride
    keypoints = ops.cast(keypoints, dtype)
    valid = ops.cast(valid, dtype)
    anchors = ops.convert_to_tensor(anchors, dtype) / ops.reshape(
        stride, (num_levels, 1, 1)
    )
    anchors = ops.reshape(anchors, (num_levels, 1, 1, num_anchors, 2))

    gx = (boxes[..., 0] + boxes[..., 2]) / 2  # (L, B, P)
    gy = (boxes[..., 1] + boxes[..., 3]) / 2
    gw = boxes[..., 2] - boxes[..., 0]
    gh = boxes[..., 3] - boxes[..., 1]

    # Anchor matching (L, B, P, A).
    positive = ops.logical_and(ops.logical_and(gw > 0, gh > 0), valid > 0)
    ratio = ops.stack([gw, gh], axis=-1)[..., None, :] / anchors
    ratio = ops.where(ratio > 0, ratio, 1.0)
    worst = ops.max(ops.maximum(ratio, 1.0 / ratio), axis=-1)
    anchor_ok = ops.logical_and(worst < anchor_t, positive[..., None])

    # Neighbour cells (L, B, P, O).
    inv_x, inv_y = nx - gx, ny - gy
    left = ops.logical_and(ops.mod(gx, 1.0) < 0.5, gx > 1.0)
    up = ops.logical_and(ops.mod(gy, 1.0) < 0.5, gy > 1.0)
    right = ops.logical_and(ops.mod(inv_x, 1.0) < 0.5, inv_x > 1.0)
    down = ops.logical_and(ops.mod(inv_y, 1.0) < 0.5, inv_y > 1.0)
    use = ops.stack([ops.ones_like(left), left, up, right, down], axis=-1)
    off = ops.convert_to_tensor(_OFFSETS, dtype)
    cell_x = _trunc(gx[..., None] - off[:, 0])
    cell_y = _trunc(gy[..., None] - off[:, 1])

    mask = ops.logical_and(anchor_ok[..., None], use[..., None, :])
    nx4 = nx[..., None]
    ix = ops.minimum(ops.maximum(cell_x, 0.0), nx4 - 1)
    iy = ops.minimum(ops.maximum(cell_y, 0.0), ny[..., None] - 1)
    cell = (iy * nx4 + ix) * num_anchors
    anchor_index = ops.reshape(ops.arange(num_anchors, dtype=dtype), (-1, 1))
    cell = ops.cast(cell[..., None, :] + anchor_index, "int32")

    size = ops.shape(cell_x)
    box = ops.stack(
        [
            gx[..., None] - cell_x,
            gy[..., None] - cell_y,
            ops.broadcast_to(gw[..., None], size),
            ops.broadcast_to(gh[..., None], size),
        ],
        axis=-1,
    )
    cell_xy = ops.stack([cell_x, cell_y], axis=-1)[..., None, :]
    kpt = keypoints[None, :, :, None, :, :2] / stride[..., None, None]
    kpt = kpt - cell_xy  # (L, B, P, O, K, 2)
    area = ops.where(positive, gw * gh, 1.0)
    return {
        "mask": ops.cast(mask, dtype),
        "cell": cell,
        "box": box[:, :, :, None],
        "keypoints": kpt[:, :, :, None],
        "visible": ops.cast(keypoints[..., 2] > 0, dtype)[
            None, :, :, None, None
        ],
        "area": area[..., None, None, None],
    }


@kerapose_export("kerapose.losses.YOLOPoseLoss")
class YOLOPoseLoss(keras.losses.Loss):
    """The official YOLO-Pose training loss, target assignment in-graph.

    `loss(targets, raw_levels)` returns `B * (box + obj + cls + kpt +
    kpt_conf)` (the official scaling by batch size B); `components(...)`
    returns the five weighted parts. Per level (P3..P6):

    * Assignment (`assign_targets`): anchors whose w/h ratio to the
      person's box is within `anchor_t` on both sides; the centre cell and
      up to two neighbour cells. Every match is a positive.
    * box: mean over positives of 1 - CIoU, the prediction decoded in grid
      units as (sigmoid(t_xy) * 2 - 0.5, (sigmoid(t_wh) * 2)^2 * anchor).
    * obj: BCE on every cell and anchor against the CIoU of its positive
      (detached, clamped at 0, mixed with 1 by `iou_ratio`, the official
      gr = 1.0), times the level's `balance`. Where several people share a
      positive the largest CIoU wins.
    * cls: skipped, as in the official code for a single class (0).
    * kpt: OKS loss, sum over visible keypoints of positives of
      `1 - exp(-d / (s * 4 * sigma^2 + 1e-9))` divided by their count,
      with d the squared distance and s = w * h of the person's box, both
      in the level's grid units (d / s is the same in pixels), keypoints
      decoded as t * 2 - 0.5 relative to the cell. COCOeval divides by
      2 * s * (2 * sigma)^2, twice this denominator.
    * kpt_conf: BCE of the keypoint confidence logits of positives
      against visibility (v > 0), mean over positives and keypoints.

    The levels are summed. Weights follow the official recipe (hyp
    `box 0.05, obj 1.0, cls 0.5, kpt 0.1`) with the official train-time
    rescaling for L levels, nc = 1 class and image size S: box x 3/L,
    obj x (S/640)^2 x 3/L, cls and kpt_conf x nc/80 x 3/L, kpt unscaled.
    The official code weights kpt_conf by the rescaled cls gain, so its
    default is `cls_weight`'s 0.5. Images without people give only the
    obj term, never NaN.

    Targets dict: `boxes` (B, P, 4) [x1, y1, x2, y2], `keypoints` (B, P,
    K, 3) (x, y, v), both in input pixels, and `valid` (B, P). Raw levels:
    a list of (B, ny_l, nx_l, A, 6 + 3K) logits.

    Args:
        anchors: per level, (A, 2) anchor (w, h) in input pixels. `None`:
            the official P6 anchors.
        strides: per level, the stride in pixels. Defaults to
            `(8, 16, 32, 64)`.
        num_keypoints: int. Defaults to `17`.
        sigmas: K per-keypoint OKS sigmas. `None`: the COCO sigmas
            (only for 17 keypoints).
        box_weight, obj_weight, cls_weight, kpt_weight, kpt_conf_weight:
            recipe gains before the rescaling above. Default to `0.05`,
            `1.0`, `0.5`, `0.1` and `0.5`.
        balance: per-level obj weights. `None`: the official ones
            (`[4.0, 1.0, 0.25, 0.06]` for 4 levels).
        anchor_t: float. Defaults to `4.0`.
        iou_ratio: float. Official gr. Defaults to `1.0`.
        image_size: int. Training image size S for the obj rescaling.
            `None`: the larger side of the input, from level 0's grid.
        name: str. Defaults to `"yolo_pose_loss"`.
    """

    def __init__(
        self,
        anchors=None,
        strides=(8, 16, 32, 64),
        num_keypoints=17,
        sigmas=None,
        box_weight=0.05,
        obj_weight=1.0,
        cls_weight=0.5,
        kpt_weight=0.1,
        kpt_conf_weight=0.5,
        balance=None,
        anchor_t=4.0,
        iou_ratio=1.0,
        image_size=None,
        name="yolo_pose_loss",
        dtype=None,
        **kwargs,
    ):
        kwargs.pop("reduction", None)
        super().__init__(name=name, dtype=dtype, **kwargs)
        if anchors is None:
            from kerapose.models.yolo_pose.yolo_pose_estimator import (
                YOLO_POSE_ANCHORS,
            )

            anchors = YOLO_POSE_ANCHORS
        self.anchors = [[[float(v) for v in a] for a in lv] for lv in anchors]
        self.strides = [int(s) for s in strides]
        if len(self.anchors) != len(self.strides) or not self.strides:
            raise ValueError(
                "`anchors` and `strides` need one entry per level. Received "
                f"{len(self.anchors)} anchor levels and strides {strides}."
            )
        self.num_keypoints = int(num_keypoints)
        if sigmas is None:
            if self.num_keypoints != 17:
                raise ValueError(
                    "Pass `sigmas` (one OKS sigma per keypoint): the COCO "
                    "default only fits 17 keypoints. Received "
                    f"num_keypoints={num_keypoints}."
                )
            from kerapose.eval.functional import COCO_SIGMAS

            sigmas = COCO_SIGMAS
        self.sigmas = [float(s) for s in sigmas]
        if len(self.sigmas) != self.num_keypoints or min(self.sigmas) <= 0:
            raise ValueError(
                f"`sigmas` must hold {self.num_keypoints} positive values, "
                f"one per keypoint. Received: {list(sigmas)}"
            )
        num_levels = len(self.strides)
        if balance is None:
            balance = _BALANCE.get(num_levels, _BALANCE_DEFAULT)[:num_levels]
        self.balance = [float(b) for b in balance]
        if len(self.balance) != num_levels:
            raise ValueError(
                f"`balance` needs {num_levels} values, one per level. "
                f"Received: {balance}"
            )
        self.box_weight = float(box_weight)
        self.obj_weight = float(obj_weight)
        self.cls_weight = float(cls_weight)
        self.kpt_weight = float(kpt_weight)
        self.kpt_conf_weight = float(kpt_conf_weight)
        self.anchor_t = float(anchor_t)
        self.iou_ratio = float(iou_ratio)
        self.image_size = None if image_size is None else int(image_size)

    def _check(self, targets, raw_levels):
        keys = ("boxes", "keypoints", "valid")
        if not isinstance(targets, dict) or any(k not in targets for k in keys):
            raise ValueError(
                "YOLOPoseLoss takes a targets dict with 'boxes' (B, P, 4), "
                "'keypoints' (B, P, K, 3) and 'valid' (B, P). Received "
                f"{type(targets).__name__} with keys "
                f"{sorted(targets) if isinstance(targets, dict) else None}."
            )
        k = self.num_keypoints
        kpt_shape = tuple(targets["keypoints"].shape)
        if len(kpt_shape) != 4 or kpt_shape[2:] != (k, 3):
            raise ValueError(
                f"targets['keypoints'] must be (B, P, {k}, 3) (x, y, v). "
                f"Received shape {kpt_shape}."
            )
        box_shape = tuple(targets["boxes"].shape)
        if len(box_shape) != 3 or box_shape[-1] != 4:
            raise ValueError(
                "targets['boxes'] must be (B, P, 4) [x1, y1, x2, y2]. "
                f"Received shape {box_shape}."
            )
        is_list = isinstance(raw_levels, (list, tuple))
        if not is_list or len(raw_levels) != len(self.strides):
            raise ValueError(
                f"YOLOPoseLoss expects a list of {len(self.strides)} raw "
                "levels (B, ny, nx, A, F), one per stride "
                f"{self.strides}. Received {type(raw_levels).__name__} "
                f"of length {len(raw_levels) if is_list else 'n/a'}."
            )
        fields = 5 + NUM_CLASSES + 3 * k
        for level, raw in enumerate(raw_levels):
            shape = tuple(raw.shape)
            num_anchors = len(self.anchors[level])
            if (
                len(shape) != 5
                or None in shape[1:]
                or shape[3:] != (num_anchors, fields)
            ):
                raise ValueError(
                    f"Raw level {level} must be (B, ny, nx, {num_anchors}, "
                    f"{fields}) with a known grid (F = 6 + 3 x "
                    f"{k} keypoints). Received shape {shape}."
                )

    def _image_size(self, raw_levels):
        if self.image_size is not None:
            return self.image_size
        _, ny, nx = raw_levels[0].shape[:3]
        return max(ny, nx) * self.strides[0]

    def components(self, targets, raw_levels):
        """The five weighted loss parts, each a scalar (no batch scaling).

        Returns:
            dict of `box`, `obj`, `cls`, `kpt`, `kpt_conf`.
        """
        self._check(targets, raw_levels)
        num_levels = len(self.strides)
        k = self.num_keypoints
        grids = [tuple(raw.shape[1:3]) for raw in raw_levels]
        cells = [ny * nx * len(a) for (ny, nx), a in zip(grids, self.anchors)]
        t = assign_targets(
            targets["boxes"],
            targets["keypoints"],
            targets["valid"],
            self.anchors,
            self.strides,
            grids,
            self.anchor_t,
        )
        mask = t["mask"]  # (L, B, P, A, O)
        batch = ops.shape(mask)[1]

        # Every image's cells of all levels in one table (B * R, F), so one
        # gather serves all levels.
        fields = raw_levels[0].shape[-1]
        table = ops.concatenate(
            [
                ops.reshape(ops.cast(raw, "float32"), (batch, -1, fields))
                for raw in raw_levels
            ],
            axis=1,
        )
        rows = sum(cells)
        table = ops.reshape(table, (-1, fields))
        start = [sum(cells[:i]) for i in range(num_levels)]
        image = ops.reshape(ops.arange(batch, dtype="int32"), (1, -1, 1, 1, 1))
        start = ops.reshape(
            ops.convert_to_tensor(start, "int32"), (-1, 1, 1, 1, 1)
        )
        index = t["cell"] + start + image * rows
        pred = ops.take(table, ops.reshape(index, (-1,)), axis=0)
        pred = ops.reshape(pred, ops.shape(mask) + (fields,))

        anchors = ops.convert_to_tensor(self.anchors, "float32")
        strides = ops.convert_to_tensor(self.strides, "float32")
        anchors = anchors / ops.reshape(strides, (-1, 1, 1))
        anchors = ops.reshape(anchors, (num_levels, 1, 1, -1, 1, 2))
        det = ops.sigmoid(pred[..., :4])
        pbox = ops.concatenate(
            [det[..., :2] * 2 - 0.5, ops.square(det[..., 2:4] * 2) * anchors],
            axis=-1,
        )
        iou = complete_iou(pbox, t["box"])
        per_level = (1, 2, 3, 4)
        num_pos = ops.sum(mask, axis=per_level)
        box = ops.sum(mask * (1.0 - iou), axis=per_level)
        box = ops.sum(box / ops.maximum(num_pos, 1.0))

        kpt = ops.reshape(pred[..., 6:], ops.shape(mask) + (k, 3))
        dist = ops.sum(ops.square(kpt[..., :2] * 2 - 0.5 - t["keypoints"]), -1)
        sigmas = ops.convert_to_tensor(self.sigmas, "float32")
        scale = t["area"] * (4.0 * ops.square(sigmas)) + _OKS_EPS
        visible = mask[..., None] * t["visible"]  # (L, B, P, A, O, K)
        per_level_k = (1, 2, 3, 4, 5)
        oks = ops.sum((1.0 - ops.exp(-dist / scale)) * visible, per_level_k)
        num_visible = ops.sum(visible, axis=per_level_k)
        kpt_loss = ops.sum(oks / ops.maximum(num_visible, 1.0))
        conf = _bce_with_logits(kpt[..., 2], t["visible"]) * mask[..., None]
        conf = ops.sum(conf, axis=per_level_k)
        kpt_conf = ops.sum(conf / ops.maximum(num_pos * k, 1.0))

        # Objectness target per cell: the best positive's CIoU; unmatched
        # candidates go to a spare segment that is dropped.
        score = ops.stop_gradient(ops.relu(iou))
        score = (1.0 - self.iou_ratio) + self.iou_ratio * score
        total = batch * rows
        segment = ops.where(mask > 0, index, total)
        tobj = ops.segment_max(
            ops.reshape(score, (-1,)),
            ops.reshape(segment, (-1,)),
            num_segments=total + 1,
        )
        tobj = ops.reshape(ops.maximum(tobj[:total], 0.0), (batch, rows))
        # Mean per level times its balance, as one weighted sum.
        weight = ops.convert_to_tensor(
            np.concatenate(
                [
                    np.full(n, b / n, "float32")
                    for n, b in zip(cells, self.balance)
                ]
            )
        )
        obj = _bce_with_logits(ops.reshape(table[:, 4], (batch, rows)), tobj)
        obj = ops.sum(obj * weight) / ops.cast(batch, "float32")

        image_size = self._image_size(raw_levels)
        layer_gain = 3.0 / num_levels
        class_gain = NUM_CLASSES / 80.0 * layer_gain
        obj_gain = self.obj_weight * (image_size / 640.0) ** 2 * layer_gain
        return {
            "box": box * (self.box_weight * layer_gain),
            "obj": obj * obj_gain,
            # Single class: the official code skips the class loss.
            "cls": ops.zeros((), "float32") * self.cls_weight,
            "kpt": kpt_loss * self.kpt_weight,
            "kpt_conf": kpt_conf * (self.kpt_conf_weight * class_gain),
        }

    def call(self, y_true, y_pred):
        parts = self.components(y_true, y_pred)
        batch = ops.cast(ops.shape(y_pred[0])[0], "float32")
        return batch * (
            parts["box"]
            + parts["obj"]
            + parts["cls"]
            + parts["kpt"]
            + parts["kpt_conf"]
        )

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Targets are a dict and the prediction a list of levels, so the
        # base class' tensor conversion and reduction do not apply.
        return self.call(y_true, list(y_pred))

    def get_config(self):
        return {
            "name": self.name,
            "anchors": self.anchors,
            "strides": self.strides,
            "num_keypoints": self.num_keypoints,
            "sigmas": self.sigmas,
            "box_weight": self.box_weight,
            "obj_weight": self.obj_weight,
            "cls_weight": self.cls_weight,
            "kpt_weight": self.kpt_weight,
            "kpt_conf_weight": self.kpt_conf_weight,
            "balance": self.balance,
            "anchor_t": self.anchor_t,
            "iou_ratio": self.iou_ratio,
            "image_size": self.image_size,
        }
