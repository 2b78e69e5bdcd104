"""Synthetic COCO-format keypoint data: stick figures on cluttered images.

The figures follow the 17 COCO keypoints on a simple 2D kinematic tree
(torso, head with face, two-segment arms and legs). Every keypoint is the
exact centre of what is drawn for it (a limb end, an eye dot, an ear disc),
so a model can learn to find them. Images hold zero to a few people, some
partly outside the frame (those joints get ``v=0`` and ``x=y=0``, as in
COCO) and some covered by an occluder or by a person drawn in front (those
joints get ``v=1``: labelled but not visible).

Coordinates use the pixel-index convention of OpenCV drawing: ``(0, 0)`` is
the centre of the top-left pixel. They are multiples of 1/4 pixel because
the drawing uses 2 fractional bits.
"""

import json
import pathlib
import zlib

import cv2
import numpy as np

from kerapose.data.keypoint_specs import COCO_17

__all__ = ["make_synthetic_sample", "write_synthetic_coco"]

_SHIFT = 2  # fractional bits used by the cv2 drawing calls
_SCALE = 1 << _SHIFT
_AA = {"lineType": cv2.LINE_AA, "shift": _SHIFT}

# Face features on a unit head sphere: (keypoint, azimuth towards the
# person's left in degrees, height in head radii, radial scale).
_FACE = (
    (0, 0.0, -0.2, 1.0),  # nose
    (1, 35.0, 0.2, 0.8),  # left_eye
    (2, -35.0, 0.2, 0.8),  # right_eye
    (3, 90.0, 0.0, 1.0),  # left_ear
    (4, -90.0, 0.0, 1.0),  # right_ear
)
# fmt: off
_SKIN = ((255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66),
         (141, 85, 36), (92, 56, 30))
# fmt: on


def _unit(angle):
    """Unit vector for an angle in degrees, measured from 'down' (+y)."""
    a = np.deg2rad(angle)
    return np.array([np.sin(a), np.cos(a)])


def _angle_of(v):
    return float(np.rad2deg(np.arctan2(v[0], v[1])))


def _pose(rng, height):
    """Samples one figure around a root at (0, 0).

    Args:
        rng: A ``np.random.Generator``.
        height: Person height in pixels.

    Returns:
        ``(joints, face_visible, extras)``: ``joints`` is a (17, 2) array,
        ``face_visible`` a (17,) bool array (False for face parts turned
        away from the camera) and ``extras`` a dict of drawing geometry.
    """
    h = height
    joints = np.zeros((17, 2))
    # Facing angle: 0 looks at the camera, 180 away from it. The person's
    # left lies towards image +x when facing the camera.
    if rng.random() < 0.75:
        facing = rng.uniform(-65.0, 65.0)
    else:
        facing = 180.0 + rng.uniform(-50.0, 50.0)
    cos_f = np.cos(np.deg2rad(facing))
    breadth = np.sign(cos_f) * max(abs(cos_f), 0.4)
    lean = rng.normal(0.0, 8.0)
    if rng.random() < 0.1:
        lean += rng.choice([-1.0, 1.0]) * rng.uniform(30.0, 80.0)
    down = _unit(lean)
    up = -down
    left = np.array([-up[1], up[0]]) * np.sign(breadth)  # person's left
    widthf = abs(breadth)

    shoulder_c = up * 0.3 * h
    for side, (sh, hip) in ((1.0, (5, 11)), (-1.0, (6, 12))):
        joints[sh] = shoulder_c + side * left * 0.12 * h * widthf
        joints[hip] = side * left * 0.085 * h * widthf

    # Arms: abduction from hanging down, then a bend at the elbow either
    # way; foreshortening stands in for motion out of the image plane.
    hands = []
    for side, (sh, el, wr) in ((1.0, (5, 7, 9)), (-1.0, (6, 8, 10))):
        abduct = rng.uniform(-30.0, 165.0)
        d1 = (
            np.cos(np.deg2rad(abduct)) * down
            + side * np.sin(np.deg2rad(abduct)) * left
        )
        joints[el] = joints[sh] + d1 * 0.16 * h * rng.uniform(0.7, 1.0)
        bend = rng.choice([-1.0, 1.0]) * rng.uniform(0.0, 140.0)
        d2 = _unit(_angle_of(d1) + bend)
        joints[wr] = joints[el] + d2 * 0.15 * h * rng.uniform(0.7, 1.0)
        hands.append(joints[wr] + d2 * 0.035 * h)

    feet = []
    for side, (hip, kn, an) in ((1.0, (11, 13, 15)), (-1.0, (12, 14, 16))):
        abduct = rng.uniform(-15.0, 45.0)
        d1 = (
            np.cos(np.deg2rad(abduct)) * down
            + side * np.sin(np.deg2rad(abduct)) * left
        )
        joints[kn] = joints[hip] + d1 * 0.25 * h * rng.uniform(0.75, 1.0)
        bend = rng.choice([-1.0, 1.0]) * rng.uniform(0.0, 100.0)
        d2 = _unit(_angle_of(d1) + bend)
        joints[an] = joints[kn] + d2 * 0.24 * h * rng.uniform(0.75, 1.0)
        # Feet point outwards from the shin, to the person's side.
        toe = _unit(_angle_of(d2) + side * np.sign(breadth) * 75.0)
        feet.append(joints[an] + toe * 0.06 * h)

    # Head: tilted a little from the torso; face features sit on a sphere
    # turned by the facing angle.
    head_up = _unit(_angle_of(up) + rng.normal(0.0, 10.0))
    head_x = np.array([-head_up[1], head_up[0]])  # image-right when upright
    radius = 0.07 * h
    neck = shoulder_c + up * 0.02 * h
    head_c = neck + head_up * (radius + 0.02 * h)
    face_visible = np.ones(17, bool)
    for k, azimuth, elev, scale in _FACE:
        a = np.deg2rad(facing + azimuth)
        joints[k] = head_c + head_x * np.sin(a) * radius * scale
        joints[k] += head_up * elev * radius
        # Ears stick out, so they stay visible a little past the profile.
        face_visible[k] = np.cos(a) > (-0.3 if k >= 3 else 0.15)
    extras = {
        "neck": neck,
        "head_c": head_c,
        "head_up": head_up,
        "radius": radius,
        "hands": hands,
        "feet": feet,
        "back_view": cos_f < 0,
    }
    return joints, face_visible, extras


def _pt(p):
    return (int(round(p[0] * _SCALE)), int(round(p[1] * _SCALE)))


class _Canvas:
    """Draws on the image and on a coverage mask of the current layer."""

    def __init__(self, image):
        self.image = image
        self.mask = np.zeros(image.shape[:2], np.uint8)

    def line(self, p, q, color, thickness, outline=True):
        t = max(int(round(thickness)), 2)
        if outline:
            dark = tuple(int(c * 0.35) for c in color)
            self._line(p, q, dark, t + 2)
        self._line(p, q, color, t)

    def _line(self, p, q, color, t):
        for img, col in ((self.image, color), (self.mask, 255)):
            cv2.line(img, _pt(p), _pt(q), col, t, **_AA)

    def disc(self, c, r, color, outline=True):
        r = max(r, 1.0)
        if outline:
            dark = tuple(int(v * 0.35) for v in color)
            self._disc(c, r + 1.0, dark)
        self._disc(c, r, color)

    def _disc(self, c, r, color):
        for img, col in ((self.image, color), (self.mask, 255)):
            cv2.circle(img, _pt(c), int(round(r * _SCALE)), col, -1, **_AA)

    def polygon(self, points, color):
        pts = np.array([_pt(p) for p in points], np.int32)
        dark = tuple(int(v * 0.35) for v in color)
        for img, col in ((self.image, dark), (self.mask, 255)):
            cv2.polylines(img, [pts], True, col, 2, **_AA)
        for img, col in ((self.image, color), (self.mask, 255)):
            cv2.fillPoly(img, [pts], col, **_AA)


def _color(rng, low=0, high=256):
    return tuple(int(c) for c in rng.integers(low, high, 3))


def _draw_person(canvas, rng, joints, face_visible, extras, height):
    """Draws a figure; every keypoint is the centre of a drawn part."""
    h = height
    skin = _SKIN[rng.integers(len(_SKIN))]
    shirt, pants, hair = _color(rng), _color(rng), _color(rng, 0, 90)
    arm_t, leg_t = 0.05 * h, 0.065 * h
    j = joints
    # Torso: shoulders and hips are its corners.
    canvas.polygon([j[5], j[6], j[12], j[11]], shirt)
    canvas.line(extras["neck"], (j[5] + j[6]) / 2, skin, arm_t)
    for hip, kn, an, foot in ((11, 13, 15, 0), (12, 14, 16, 1)):
        canvas.line(j[hip], j[kn], pants, leg_t)
        canvas.line(j[kn], j[an], pants, leg_t * 0.85)
        canvas.line(j[an], extras["feet"][foot], (40, 40, 40), leg_t * 0.6)
    long_sleeves = rng.random() < 0.5
    for sh, el, wr, hand in ((5, 7, 9, 0), (6, 8, 10, 1)):
        canvas.line(j[sh], j[el], shirt, arm_t)
        canvas.line(j[el], j[wr], shirt if long_sleeves else skin, arm_t)
        canvas.line(j[wr], extras["hands"][hand], skin, arm_t * 0.8)
    # Joint markers make straight limbs' elbows and knees locatable.
    for k in (5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16):
        canvas.disc(j[k], 0.022 * h, (20, 20, 20), outline=False)
    _draw_head(canvas, j, face_visible, extras, skin, hair)


def _draw_head(canvas, j, face_visible, extras, skin, hair):
    c, r = extras["head_c"], extras["radius"]
    canvas.disc(c, r, hair if extras["back_view"] else skin)
    if not extras["back_view"]:
        # Hair above a chord at 0.4 radii, turned with the head's tilt.
        up = extras["head_up"]
        tilt = np.rad2deg(np.arctan2(up[0], -up[1]))
        pts = cv2.ellipse2Poly(
            _pt(c), (int(r * _SCALE),) * 2, int(round(tilt)), 205, 335, 5
        )
        cv2.fillPoly(canvas.image, [pts], hair, **_AA)
    for k in (3, 4):
        if face_visible[k]:
            canvas.disc(j[k], 0.22 * r, skin)
    for k, color in ((1, (25, 25, 25)), (2, (25, 25, 25)), (0, (220, 30, 30))):
        if face_visible[k]:
            canvas.disc(j[k], 0.16 * r, color, outline=False)


def _background(rng, height, width):
    c0 = np.array(_color(rng), np.float32)
    c1 = np.array(_color(rng), np.float32)
    theta = rng.uniform(0.0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xx * np.cos(theta) + yy * np.sin(theta)
    t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    blobs = rng.normal(0.0, 25.0, (4, 5, 3)).astype(np.float32)
    img += cv2.resize(blobs, (width, height), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0.0, rng.uniform(2.0, 10.0), img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    # Clutter, including limb-like bars as hard negatives.
    scale = min(height, width)
    for _ in range(rng.integers(2, 9)):
        kind = rng.integers(4)
        color = _color(rng)
        p = rng.uniform((0, 0), (width, height))
        size = rng.uniform(0.05, 0.35) * scale
        if kind == 0:
            q = p + rng.uniform(-size, size, 2)
            thick = -1 if rng.random() < 0.6 else int(rng.integers(1, 4))
            cv2.rectangle(img, _pt(p), _pt(q), color, thick, **_AA)
        elif kind == 1:
            cv2.circle(img, _pt(p), int(size * _SCALE / 2), color, -1, **_AA)
        elif kind == 2:
            q = p + rng.uniform(-size, size, 2)
            thick = int(rng.integers(2, max(3, int(0.06 * scale))))
            cv2.line(img, _pt(p), _pt(q), color, thick, **_AA)
        else:
            axes = (int(size * _SCALE / 2), int(size * _SCALE / 4))
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(img, _pt(p), axes, angle, 0, 360, color, -1, **_AA)
    return img


def _place(rng, joints, extras, image_size, cut, margin, taken):
    """Picks a root position: fully inside, or partly out of the frame.

    Of a few random candidates, keeps the one overlapping the boxes in
    ``taken`` least, so people overlap sometimes rather than usually.
    Appends the chosen box to ``taken``.
    """
    pts = np.concatenate(
        [joints, extras["hands"], extras["feet"], [extras["head_c"]]]
    )
    lo = pts.min(0) - margin
    hi = pts.max(0) + margin
    size = np.array([image_size[1] - 1.0, image_size[0] - 1.0])
    if cut:
        # Keep at least 30% of the figure's extent inside.
        keep = 0.3 * (hi - lo)
        low, high = keep - hi, size - lo - keep
    else:
        low, high = -lo, size - hi
    high = np.maximum(high, low)
    best, best_cost = None, np.inf
    for _ in range(4):
        shift = rng.uniform(low, high)
        cost = 0.0
        for t_lo, t_hi in taken:
            inter = np.minimum(hi + shift, t_hi) - np.maximum(lo + shift, t_lo)
            cost += float(np.prod(np.clip(inter, 0.0, None)))
        if cost < best_cost:
            best, best_cost = shift, cost
    taken.append((lo + best, hi + best))
    return best


def make_synthetic_sample(
    rng, image_size=(192, 256), max_people=3, num_people=None
):
    """Draws one synthetic image with its keypoint annotations.

    Args:
        rng: A ``np.random.Generator`` that drives every random choice.
        image_size: ``(height, width)`` of the image.
        max_people: Most people drawn when ``num_people`` is None.
        num_people: Exact number of people to draw, or None to draw
            between 1 and ``max_people``.

    Returns:
        ``(image, people)``: an RGB ``uint8`` array of shape
        ``(height, width, 3)`` and one dict per person with ``keypoints``
        (a (17, 3) float array of ``x, y, v``), ``bbox`` (``[x, y, w, h]``,
        the tight box of the person's drawn pixels), ``area`` and
        ``num_keypoints`` (count of ``v > 0``). People wholly hidden from
        the frame are left out.
    """
    height, width = (int(s) for s in image_size)
    if height < 16 or width < 16:
        raise ValueError(
            f"image_size must be at least 16x16, got {image_size}."
        )
    if num_people is None:
        num_people = int(rng.integers(1, max_people + 1)) if max_people else 0
    image = _background(rng, height, width)
    layers = []  # (person index or None, coverage mask), back to front
    figures = []
    taken = []  # boxes of the people placed so far
    for p in range(num_people):
        h = rng.uniform(0.4, 0.9) * height
        joints, face_visible, extras = _pose(rng, h)
        # The first person stays whole so most images have a clean figure.
        cut = p > 0 and rng.random() < 0.35
        shift = _place(
            rng, joints, extras, (height, width), cut, 0.08 * h, taken
        )
        joints = np.round((joints + shift) * _SCALE) / _SCALE
        for key in ("neck", "head_c"):
            extras[key] = extras[key] + shift
        for key in ("hands", "feet"):
            extras[key] = [q + shift for q in extras[key]]
        canvas = _Canvas(image)
        _draw_person(canvas, rng, joints, face_visible, extras, h)
        layers.append((p, canvas.mask))
        figures.append((joints, face_visible))
        if rng.random() < (0.15 if p == 0 else 0.35):
            layers.append((None, _occluder(rng, image, joints, h)))
    people = []
    for idx, (joints, face_visible) in enumerate(figures):
        order = next(i for i, (p, _) in enumerate(layers) if p == idx)
        mask = layers[order][1]
        if not mask.any():
            continue
        front = [m for _, m in layers[order + 1 :]]
        people.append(_annotate(joints, face_visible, mask, front, image))
    noise = rng.normal(0.0, rng.uniform(0.0, 4.0), image.shape)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return image, people


def _occluder(rng, image, joints, h):
    """Draws a rectangle over part of a person; returns its mask."""
    anchor = joints[rng.integers(5, 17)] + rng.normal(0.0, 0.05 * h, 2)
    half = rng.uniform(0.08, 0.2, 2) * h
    canvas = _Canvas(image)
    p, q = anchor - half, anchor + half
    color = _color(rng)
    for img, col in ((canvas.image, color), (canvas.mask, 255)):
        cv2.rectangle(img, _pt(p), _pt(q), col, -1, **_AA)
    if rng.random() < 0.5:  # stripes, so occluders are not flat patches
        stripe = _color(rng)
        step = max(3.0, 0.04 * h)
        for x in np.arange(p[0], q[0], 2 * step):
            x1 = min(x + step, q[0])
            cv2.rectangle(
                canvas.image, _pt((x, p[1])), _pt((x1, q[1])), stripe, -1, **_AA
            )
    return canvas.mask


def _annotate(joints, face_visible, mask, front, image):
    height, width = image.shape[:2]
    kpts = np.zeros((17, 3))
    for k, (x, y) in enumerate(joints):
        inside = 0 <= x <= width - 1 and 0 <= y <= height - 1
        if not (inside and face_visible[k]):
            continue
        r, c = int(round(y)), int(round(x))
        covered = any(m[r, c] > 127 for m in front)
        kpts[k] = (x, y, 1 if covered else 2)
    ys, xs = np.nonzero(mask)
    x0, y0 = float(xs.min()), float(ys.min())
    w, h = float(xs.max()) - x0 + 1, float(ys.max()) - y0 + 1
    return {
        "keypoints": kpts,
        "bbox": [x0, y0, w, h],
        "area": w * h,
        "num_keypoints": int((kpts[:, 2] > 0).sum()),
    }


def _coco_annotation(ann_id, image_id, person):
    flat = []
    for x, y, v in person["keypoints"]:
        flat += [float(x), float(y), int(v)]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": flat,
        "num_keypoints": person["num_keypoints"],
        "bbox": person["bbox"],
        "area": person["area"],
        "iscrowd": 0,
    }


def write_synthetic_coco(
    out_dir,
    num_images=32,
    image_size=(192, 256),
    max_people=3,
    seed=0,
    split="train",
):
    """Writes a synthetic COCO keypoint dataset.

    Images go to ``out_dir/images/<split>_<index>.jpg`` (JPEG quality 90)
    and annotations to ``out_dir/person_keypoints_<split>.json``. Every
    eighth image (indices 3, 11, ...) has no people. The output is a pure
    function of the arguments: image ``i`` depends only on ``seed``,
    ``split`` and ``i``.

    Args:
        out_dir: Output directory, created if missing.
        num_images: Number of images.
        image_size: ``(height, width)`` of every image.
        max_people: Most people per image.
        seed: Random seed.
        split: Split name used in the file names.

    Returns:
        The ``pathlib.Path`` of the annotation JSON.
    """
    if num_images < 0 or max_people < 0:
        raise ValueError("num_images and max_people must be >= 0.")
    out_dir = pathlib.Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    height, width = (int(s) for s in image_size)
    split_key = zlib.crc32(split.encode("utf-8"))
    images, annotations = [], []
    for i in range(num_images):
        rng = np.random.default_rng([seed, split_key, i])
        count = 0 if i % 8 == 3 else None
        image, people = make_synthetic_sample(
            rng, (height, width), max_people, num_people=count
        )
        file_name = f"{split}_{i:06d}.jpg"
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        cv2.imwrite(
            str(image_dir / file_name), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90]
        )
        image_id = i + 1
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "height": height,
                "width": width,
            }
        )
        for person in people:
            # Ids start at 1: COCOeval treats id 0 as "unmatched".
            ann_id = len(annotations) + 1
            annotations.append(_coco_annotation(ann_id, image_id, person))
    category = {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(COCO_17.keypoint_names),
        "skeleton": [[i + 1, j + 1] for i, j in COCO_17.skeleton],
    }
    data = {
        "info": {"description": f"kerapose synthetic keypoints ({split})"},
        "images": images,
        "annotations": annotations,
        "categories": [category],
    }
    ann_path = out_dir / f"person_keypoints_{split}.json"
    ann_path.write_text(json.dumps(data))
    return ann_path
