import math

import keras
import numpy as np
import pytest

from kerapose.eval.functional import COCO_SIGMAS
from kerapose.losses import YOLOPoseLoss
from kerapose.losses.yolo_pose_loss import assign_targets
from kerapose.testing.test_case import to_numpy

ANCHORS = [
    [[19, 27], [44, 40], [38, 94]],
    [[96, 68], [86, 152], [180, 137]],
    [[140, 301], [303, 264], [238, 542]],
    [[436, 615], [739, 380], [925, 792]],
]
STRIDES = [8, 16, 32, 64]
H, W, K, B, P = 128, 64, 17, 2, 4
PARTS = ("box", "obj", "cls", "kpt", "kpt_conf")
GRIDS = [(H // s, W // s) for s in STRIDES]


@pytest.fixture(scope="module")
def loss():
    return YOLOPoseLoss(anchors=ANCHORS, strides=STRIDES, num_keypoints=K)


def _raw(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(B, H // s, W // s, 3, 6 + 3 * K)) * scale).astype(
            "float32"
        )
        for s in STRIDES
    ]


def _targets(people):
    """people: per image, a list of ((x1, y1, x2, y2), valid)."""
    rng = np.random.default_rng(7)
    boxes = np.zeros((B, P, 4), "float32")
    kpts = np.zeros((B, P, K, 3), "float32")
    valid = np.zeros((B, P), "float32")
    for b, image in enumerate(people):
        for p, (box, ok) in enumerate(image):
            boxes[b, p] = box
            valid[b, p] = ok
            kpts[b, p, :, 0] = rng.uniform(box[0], box[2] + 1, K)
            kpts[b, p, :, 1] = rng.uniform(box[1], box[3] + 1, K)
            kpts[b, p, :, 2] = rng.integers(0, 3, K)
    return {"boxes": boxes, "keypoints": kpts, "valid": valid}


# Image 0: a tall person, a wide one, a big one (several levels, all
# neighbour directions) and a small one less than a cell from the bottom;
# image 1: a degenerate box, a padded row with a box, a small person less
# than a cell from the left edge and one centred left of the image.
PEOPLE = [
    [
        ((10, 20, 22, 110), 1),
        ((34, 80, 62, 100), 1),
        ((2, 4, 60, 124), 1),
        ((40, 120, 50, 130), 1),
    ],
    [
        ((20, 30, 20, 60), 1),
        ((30, 40, 50, 80), 0),
        ((0, 1, 6, 13), 1),
        ((-10, 50, 4, 70), 1),
    ],
]


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _bce(x, t):
    return np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))


def _ciou(p, t, eps=1e-7):
    # Element-wise CIoU of (n, 4) centre-x, centre-y, w, h boxes.
    p1, p2 = p[:, :2] - p[:, 2:] / 2, p[:, :2] + p[:, 2:] / 2
    t1, t2 = t[:, :2] - t[:, 2:] / 2, t[:, :2] + t[:, 2:] / 2
    inter = np.prod(
        np.clip(np.minimum(p2, t2) - np.maximum(p1, t1), 0, None), 1
    )
    wp, hp = p2[:, 0] - p1[:, 0], p2[:, 1] - p1[:, 1] + eps
    wt, ht = t2[:, 0] - t1[:, 0], t2[:, 1] - t1[:, 1] + eps
    iou = inter / (wp * hp + wt * ht - inter + eps)
    c2 = np.sum((np.maximum(p2, t2) - np.minimum(p1, t1)) ** 2, 1) + eps
    rho2 = np.sum((t1 + t2 - p1 - p2) ** 2, 1) / 4
    v = 4 / math.pi**2 * (np.arctan(wt / ht) - np.arctan(wp / hp)) ** 2
    return iou - (rho2 / c2 + v * v / (v - iou + 1 + eps))


def _official_assign(targets, level):
    """The official build_targets rule with filtering, for one level.

    Returns rows (b, a, gj, gi, person) and the cell offsets gxy - gij.
    """
    stride, (ny, nx) = (
        STRIDES[level],
        (H // STRIDES[level], W // STRIDES[level]),
    )
    anchors = np.array(ANCHORS[level], float) / stride
    bx = targets["boxes"].astype(float) / stride
    rows = []
    for b, p in zip(*np.nonzero(targets["valid"])):
        x1, y1, x2, y2 = bx[b, p]
        for a in range(3):
            r = np.array([x2 - x1, y2 - y1]) / anchors[a]
            with np.errstate(divide="ignore"):
                if np.max(np.maximum(r, 1 / r)) >= 4.0:
                    continue
            rows.append((b, a, p, (x1 + x2) / 2, (y1 + y2) / 2))
    out = []
    for b, a, p, gx, gy in rows:
        ix, iy = nx - gx, ny - gy
        offsets = [(0, 0)]
        if gx % 1 < 0.5 and gx > 1:
            offsets.append((0.5, 0))
        if gy % 1 < 0.5 and gy > 1:
            offsets.append((0, 0.5))
        if ix % 1 < 0.5 and ix > 1:
            offsets.append((-0.5, 0))
        if iy % 1 < 0.5 and iy > 1:
            offsets.append((0, -0.5))
        for ox, oy in offsets:
            gi, gj = int(gx - ox), int(gy - oy)
            out.append(
                (
                    b,
                    a,
                    min(max(gj, 0), ny - 1),
                    min(max(gi, 0), nx - 1),
                    p,
                    gi,
                    gj,
                )
            )
    return out


def _reference(targets, raw, sigmas=COCO_SIGMAS):
    """The official loss written with per-match rows, in float64.

    Returns the weighted parts and the lowest CIoU of a match.
    """
    parts = dict.fromkeys(("box", "obj", "kpt", "kpt_conf"), 0.0)
    lowest = np.inf
    for level, stride in enumerate(STRIDES):
        pred = raw[level].astype(float)
        tobj = np.zeros(pred.shape[:4])
        rows = _official_assign(targets, level)
        if rows:
            b, a, gj, gi, p, ui, uj = map(np.array, zip(*rows))
            anchors = np.array(ANCHORS[level], float)[a] / stride
            ps = pred[b, gj, gi, a]
            box = targets["boxes"][b, p].astype(float) / stride
            cell = np.stack([ui, uj], 1)
            tbox = np.concatenate(
                [(box[:, :2] + box[:, 2:]) / 2 - cell, box[:, 2:] - box[:, :2]],
                1,
            )
            pbox = np.concatenate(
                [
                    _sigmoid(ps[:, :2]) * 2 - 0.5,
                    (_sigmoid(ps[:, 2:4]) * 2) ** 2 * anchors,
                ],
                1,
            )
            iou = _ciou(pbox, tbox)
            lowest = min(lowest, iou.min())
            parts["box"] += np.mean(1 - iou)
            kpt = targets["keypoints"][b, p].astype(float)
            vis = (kpt[..., 2] > 0).astype(float)
            parts["kpt_conf"] += np.mean(_bce(ps[:, 8::3], vis))
            d = (
                ps[:, 6::3] * 2 - 0.5 - (kpt[..., 0] / stride - ui[:, None])
            ) ** 2
            d += (
                ps[:, 7::3] * 2 - 0.5 - (kpt[..., 1] / stride - uj[:, None])
            ) ** 2
            s = np.prod(tbox[:, 2:], 1, keepdims=True)
            oks = 1 - np.exp(-d / (s * 4 * np.asarray(sigmas) ** 2 + 1e-9))
            factor = vis.size / vis.sum() if vis.sum() else 0.0
            parts["kpt"] += factor * np.mean(oks * vis)
            tobj[b, gj, gi, a] = np.clip(iou, 0, None)
            # A cell matched twice (an integer centre gives its own cell as
            # a neighbour) gets equal CIoUs, so the write order is moot.
            for key in set(zip(b, a, gj, gi)):
                hits = np.all(np.stack([b, a, gj, gi], 1) == key, axis=1)
                assert np.ptp(iou[hits]) == 0, "people share a cell"
        parts["obj"] += (
            np.mean(_bce(pred[..., 4], tobj)) * [4, 1, 0.25, 0.06][level]
        )
    gain = 3 / len(STRIDES)
    parts["box"] *= 0.05 * gain
    parts["obj"] *= 1.0 * (H / 640) ** 2 * gain
    parts["kpt"] *= 0.1
    parts["kpt_conf"] *= 0.5 / 80 * gain
    parts["cls"] = 0.0
    return parts, lowest


_COMPILED = {}


def _compiled(fn):
    # One XLA program instead of hundreds of per-op ones: the values are
    # also checked under jax.jit that way. Other backends run eagerly.
    if keras.backend.backend() != "jax":
        return fn
    if fn not in _COMPILED:
        import jax

        _COMPILED[fn] = jax.jit(fn)
    return _COMPILED[fn]


def _components(loss, targets, raw):
    parts = _compiled(loss.components)(targets, raw)
    return {k: float(to_numpy(v)) for k, v in parts.items()}


def test_matches_the_official_rule_written_per_match(loss):
    targets, raw = _targets(PEOPLE), _raw(0, scale=2.0)
    assert sum(len(_official_assign(targets, lv)) for lv in range(4)) > 10
    got = _components(loss, targets, raw)
    want, lowest = _reference(targets, raw)
    assert lowest < 0  # the objectness target's clamp at 0 is exercised
    for key in PARTS:
        np.testing.assert_allclose(got[key], want[key], rtol=2e-5, atol=1e-7)


def _assign_all_levels(boxes, keypoints, valid):
    return assign_targets(boxes, keypoints, valid, ANCHORS, STRIDES, GRIDS)


def _assign(targets):
    t = _compiled(_assign_all_levels)(
        targets["boxes"], targets["keypoints"], targets["valid"]
    )
    return {k: to_numpy(v) for k, v in t.items()}


def _matches(t, level):
    mask, cell = t["mask"][level], t["cell"][level]
    return {(b, p, cell[b, p, a, o]) for b, p, a, o in zip(*np.nonzero(mask))}


def test_assignment_picks_the_official_cells_and_anchors():
    targets = _targets(
        [
            # centre (30, 70) px: P3 cell (3, 8) plus right (4, 8), down (3, 9);
            # w/h 10/90 fits anchors 0 and 2, not 1 (44 / 10 > 4).
            [
                ((25, 25, 35, 115), 1),
                # centre (2, 4): in the corner cell, less than one cell
                # from the left edge and mid-cell in y: no neighbours;
                # 20x20 fits anchors 0 and 1, not 2 (94 / 20 > 4).
                ((-8, -6, 12, 14), 1),
                # centre (36, 68): P4 cell (2, 4) plus left (1, 4), up (2, 3);
                # 200x200 fits every P4 anchor and no P3 one (200 / 44 > 4).
                ((-64, -32, 136, 168), 1),
            ],
            [
                ((20, 30, 20, 60), 1),  # zero width: never matched
                ((30, 40, 50, 80), 0),
            ],  # padding
        ]
    )
    t = _assign(targets)

    def flat(gi, gj, a, nx):
        return (gj * nx + gi) * 3 + a

    expected = {
        (0, 0, flat(gi, gj, a, 8))
        for a in (0, 2)
        for gi, gj in [(3, 8), (4, 8), (3, 9)]
    }
    expected |= {(0, 1, flat(0, 0, a, 8)) for a in (0, 1)}
    assert _matches(t, 0) == expected
    assert _matches(t, 1) == {
        (0, 2, flat(gi, gj, a, 4))
        for a in range(3)
        for gi, gj in [(2, 4), (1, 4), (2, 3)]
    }
    assert {m[:2] for m in _matches(t, 2)} == {(0, 2)}
    # Box targets are relative to the (unclamped) cell, in grid units.
    box = t["box"][0, 0, 0, 0]
    np.testing.assert_allclose(box[0], [0.75, 0.75, 1.25, 11.25])
    np.testing.assert_allclose(box[3][:2], [-0.25, 0.75])  # right cell
    np.testing.assert_allclose(box[4][:2], [0.75, -0.25])  # down cell
    # The per-match implementation agrees on every level, duplicates too.
    for level, (_, nx) in enumerate(GRIDS):
        rows = _official_assign(targets, level)
        assert t["mask"][level].sum() == len(rows)
        assert _matches(t, level) == {
            (b, p, flat(gi, gj, a, nx)) for b, a, gj, gi, p, _, _ in rows
        }


def _exact_logits(targets):
    """Raw levels whose decoded box and keypoints equal every match."""
    raw = [np.zeros_like(r) for r in _raw(0)]
    t = _assign(targets)
    for level, stride in enumerate(STRIDES):
        nx = GRIDS[level][1]
        mask, cell = t["mask"][level], t["cell"][level]
        box, kpt = t["box"][level], t["keypoints"][level]
        for b, p, a, o in zip(*np.nonzero(mask)):
            y, rest = divmod(cell[b, p, a, o], nx * 3)
            x = rest // 3
            anchor = np.array(ANCHORS[level][a]) / stride
            xy = (box[b, p, 0, o, :2] + 0.5) / 2
            wh = np.sqrt(box[b, p, 0, o, 2:] / anchor) / 2
            field = raw[level][b, y, x, a]
            field[:2] = np.log(xy / (1 - xy))
            field[2:4] = np.log(wh / (1 - wh))
            field[6::3] = (kpt[b, p, 0, o, :, 0] + 0.5) / 2
            field[7::3] = (kpt[b, p, 0, o, :, 1] + 0.5) / 2
    return raw


def test_exact_prediction_gives_zero_box_and_keypoint_loss(loss):
    # One person centred on P3 cell (4, 8), so no neighbour cells (a
    # neighbour's offset of 1.5 or -0.5 cannot be decoded exactly).
    targets = _targets([[((26, 48, 46, 88), 1)], []])
    targets["keypoints"][..., 2] = 2.0
    # Mid-cell in x and y: its own cell only, for each of the 3 anchors.
    assert _assign(targets)["mask"][0].sum() == 3
    raw = _exact_logits(targets)
    exact = _components(loss, targets, raw)
    assert exact["box"] < 1e-6 and exact["kpt"] < 1e-6
    for level, field in [(0, 0), (0, 6)]:  # x of the box, of keypoint 0
        shifted = [r.copy() for r in raw]
        hit = np.nonzero(np.any(raw[level][..., 6:] != 0, axis=-1))
        shifted[level][hit + (np.full(len(hit[0]), field),)] += 0.3
        moved = _components(loss, targets, shifted)
        key = "box" if field == 0 else "kpt"
        assert moved[key] > exact[key] + 1e-4


class _RawProbe(keras.Model):
    """Trainable raw levels: one SGD step with learning rate 1 moves them
    by minus the loss gradient."""

    def __init__(self, loss_fn, **kwargs):
        super().__init__(**kwargs)
        self.loss_fn = loss_fn
        self.levels = [
            self.add_weight(shape=r.shape, initializer="zeros", name=f"l{i}")
            for i, r in enumerate(_raw(0))
        ]

    def call(self, x):
        return [w * 1.0 for w in self.levels]

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        return self.loss_fn(y, y_pred)


def _gradients(probe, targets, raw):
    for w, r in zip(probe.levels, raw):
        w.assign(r)
    history = probe.fit(
        np.zeros((B, 1), "float32"),
        targets,
        batch_size=B,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    grads = [r - to_numpy(w) for w, r in zip(probe.levels, raw)]
    return history.history["loss"][0], grads


def test_gradients_reach_the_matched_logits_and_empty_images_stay_finite(loss):
    probe = _RawProbe(loss, name="raw_probe")
    probe.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    if keras.backend.backend() == "jax":
        assert probe.jit_compile  # the step runs under jax.jit
    # Image 0 has people, image 1 none.
    targets = _targets([PEOPLE[0], []])
    raw = _raw(1, scale=0.5)
    value, grads = _gradients(probe, targets, raw)
    # The compiled train step's loss (`__call__`) is B x the sum of parts.
    parts = _components(loss, targets, raw)
    np.testing.assert_allclose(value, B * sum(parts.values()), rtol=1e-5)
    assert all(np.isfinite(g).all() for g in grads)
    matched = 0
    for level, g in enumerate(grads):
        assert np.all(g[1, ..., :4] == 0) and np.all(g[1, ..., 6:] == 0)
        assert np.count_nonzero(g[..., 4]) == g[..., 4].size
        cells = {
            (b, gj, gi, a)
            for b, a, gj, gi, *_ in _official_assign(targets, level)
        }
        moved = set(zip(*np.nonzero(np.any(g[..., :4] != 0, axis=-1))))
        assert moved == cells
        matched += len(cells)
    assert matched > 0
    # A batch without any person: finite loss, only objectness moves.
    empty = _targets([[], []])
    value, grads = _gradients(probe, empty, raw)
    assert np.isfinite(value) and value > 0
    assert all(np.isfinite(g).all() for g in grads)
    assert all(
        np.all(g[..., :4] == 0) and np.all(g[..., 5:] == 0) for g in grads
    )
    assert all(np.any(g[..., 4] != 0) for g in grads)


def test_no_people_no_visible_keypoints_and_degenerate_boxes_are_finite(loss):
    targets = _targets(
        [[((20, 30, 20, 60), 1), ((5, 5, 5, 5), 1)], [((10, 20, 22, 110), 1)]]
    )
    targets["keypoints"][..., 2] = 0.0
    parts = _components(loss, targets, _raw(2, scale=30.0))
    assert all(np.isfinite(v) for v in parts.values())
    assert parts["kpt"] == 0.0 and parts["box"] > 0 and parts["cls"] == 0.0


def test_serialization(loss):
    custom = YOLOPoseLoss(
        anchors=ANCHORS,
        num_keypoints=2,
        sigmas=[0.05, 0.1],
        kpt_weight=2.0,
        image_size=960,
    )
    for obj in (loss, custom):
        config = obj.get_config()
        assert YOLOPoseLoss.from_config(config).get_config() == config
        revived = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(obj)
        )
        assert isinstance(revived, YOLOPoseLoss)
        assert revived.get_config() == config


def test_bad_inputs_are_explained(loss):
    targets, raw = _targets(PEOPLE), _raw(0)
    with pytest.raises(ValueError, match="'valid'"):
        loss({"boxes": targets["boxes"]}, raw)
    with pytest.raises(ValueError, match=r"\(B, P, 17, 3\)"):
        loss(dict(targets, keypoints=targets["keypoints"][:, :, :5]), raw)
    with pytest.raises(ValueError, match="list of 4 raw levels"):
        loss(targets, raw[:3])
    with pytest.raises(ValueError, match=r"Raw level 1 must be"):
        loss(targets, [raw[0], raw[1][..., :40], raw[2], raw[3]])
    with pytest.raises(ValueError, match="Pass `sigmas`"):
        YOLOPoseLoss(num_keypoints=5)
    with pytest.raises(ValueError, match="5 positive values"):
        YOLOPoseLoss(num_keypoints=5, sigmas=[0.1] * 4)
