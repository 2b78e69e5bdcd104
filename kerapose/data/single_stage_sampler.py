"""Per-image sample of the single-stage (YOLO-Pose) pipeline.

Graph functions that read one image (and, for a mosaic, three more), place
it on its canvas with its people, and apply the augmentation of
:mod:`kerapose.data.single_stage_augment`. :mod:`kerapose.data.
single_stage` maps them over the dataset.

Shape letters: P people per image (padded), K keypoints, (H, W) input.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kerapose.data.single_stage_augment import augment_hsv
from kerapose.data.single_stage_augment import box_candidates
from kerapose.data.single_stage_augment import draw_augment_params
from kerapose.data.single_stage_augment import flip_people
from kerapose.data.single_stage_augment import random_affine_matrix
from kerapose.data.single_stage_augment import transform_people
from kerapose.data.transforms import get_inverse_affine
from kerapose.data.transforms import warp_inverse

__all__ = ["FILL_VALUE", "SingleStageSampler"]

FILL_VALUE = 114  # the official grey of letterbox borders and mosaic gaps
_RECORD_KEYS = ("image_path", "image_id", "boxes", "keypoints", "valid")


class SingleStageSampler:
    """Reads, places and augments one image's sample (graph functions).

    ``eval_sample(index, include_meta)`` and ``train_sample(index, seed)``
    are the dataset's maps; ``render(index, params)`` is the training
    sample under given draws (see
    :func:`~kerapose.data.single_stage_augment.draw_augment_params`).

    The people are kept as one flat table with row splits: a mosaic needs
    random access to any image's labels, and a padded (N, P, K, 3) array
    of a large dataset would not fit in memory.
    """

    def __init__(self, records, spec, input_size, config):
        missing = [k for k in _RECORD_KEYS if k not in records]
        if missing:
            raise ValueError(
                f"records lack {missing}; pass the dict of "
                f"kerapose.data.coco_images.load_coco_images."
            )
        valid = np.asarray(records["valid"], bool)
        keypoints = np.asarray(records["keypoints"], np.float32)
        k = spec.num_keypoints
        if valid.ndim != 2 or keypoints.shape != (*valid.shape, k, 3):
            raise ValueError(
                f"records have keypoints of shape {keypoints.shape} and "
                f"valid of shape {valid.shape}; spec {spec.name!r} wants "
                f"(N, P, {k}, 3) and (N, P)."
            )
        if len(valid) == 0:
            raise ValueError("records hold no image: nothing to iterate.")
        self.num_images, self.max_people = valid.shape
        self.input_size = input_size
        self.config = config
        self.flip_indices = tf.constant(spec.flip_indices, tf.int32)
        xywh = np.asarray(records["boxes"], np.float32)[valid].reshape(-1, 4)
        self.boxes = tf.constant(
            np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], -1)
        )
        self.keypoints = tf.constant(keypoints[valid].reshape(-1, k, 3))
        counts = valid.sum(axis=1)
        self.splits = tf.constant(np.concatenate([[0], np.cumsum(counts)]))
        self.paths = tf.constant(np.asarray(records["image_path"]).astype(str))
        self.image_ids = tf.constant(records["image_id"], tf.int64)

    # -- whole samples -------------------------------------------------

    def eval_sample(self, index, include_meta):
        canvas, people, to_image, size = self._letterbox(index, area=True)
        image = tf.cast(canvas, tf.float32) / 255.0
        if include_meta:
            return image, {
                "image_id": self.image_ids[index],
                "image_size": size,
                "input_to_image": to_image,
            }
        boxes, keypoints, valid = people
        # A box on the image's edge reaches half a pixel past the first
        # pixel centre once shrunk; the targets stay in the input.
        height, width = self.input_size
        boxes = tf.clip_by_value(boxes, 0.0, [width, height, width, height])
        return image, _targets(boxes, keypoints, valid, self.max_people)

    def train_sample(self, index, seed):
        params = draw_augment_params(
            seed, self.config, self.num_images, self.input_size
        )
        return self.render(index, params)

    def render(self, index, params):
        """The training sample of ``index`` under drawn ``params``."""
        config = self.config
        if not config.uses_mosaic:
            image, people = self._single(index, params)
        elif config.mosaic_probability >= 1.0:
            image, people = self._mosaic(index, params)
        else:
            image, people = tf.cond(
                params["mosaic"],
                lambda: self._mosaic(index, params),
                lambda: self._single(index, params, rows=4),
            )
        boxes, keypoints, valid = people
        if config.hsv_h or config.hsv_s or config.hsv_v:
            image = augment_hsv(image, params["hsv_gains"])
        if config.fliplr > 0:
            flip = params["flip"]
            width = self.input_size[1]
            image = tf.where(flip, tf.reverse(image, axis=[1]), image)
            flipped = flip_people(boxes, keypoints, width, self.flip_indices)
            boxes = tf.where(flip, flipped[0], boxes)
            keypoints = tf.where(flip, flipped[1], keypoints)
        image = tf.clip_by_value(image, 0.0, 255.0) / 255.0
        return image, _targets(boxes, keypoints, valid, self.max_people)

    def _single(self, index, params, rows=1):
        canvas, people, _, _ = self._letterbox(index, area=False)
        if rows > 1:  # as many rows as the mosaic branch has
            extra = self.max_people * (rows - 1)
            people = [
                tf.pad(t, [[0, extra]] + [[0, 0]] * (t.shape.rank - 1))
                for t in people
            ]
        return self._affine(canvas, people, params)

    def _mosaic(self, index, params):
        indices = tf.concat(
            [tf.cast(index, tf.int32)[None], params["indices"]], axis=0
        )
        canvas, people = self._mosaic_canvas(indices, params["center"])
        return self._affine(canvas, people, params)

    def _affine(self, canvas, people, params):
        """The official ``random_perspective`` of a canvas and its people."""
        height, width = self.input_size
        shape = tf.shape(canvas)
        matrix = random_affine_matrix(
            shape[:2],
            self.input_size,
            params["angle"],
            params["scale"],
            params["shear"],
            params["translate"],
        )
        # Bilinear is linear: warping (canvas - 114) with a zero border and
        # adding 114 back is OpenCV's warp with a constant 114 border.
        image = warp_inverse(
            tf.cast(canvas, tf.float32) - FILL_VALUE,
            get_inverse_affine(matrix),
            (height, width),
        )
        boxes, keypoints, valid = people
        moved_boxes, keypoints = transform_people(
            boxes, keypoints, matrix, self.input_size
        )
        valid = valid & box_candidates(
            boxes, moved_boxes, params["scale"], self.config
        )
        return image + FILL_VALUE, (moved_boxes, keypoints, valid)

    # -- canvases ------------------------------------------------------

    def _letterbox(self, index, area):
        """The image fitted into the input, centred on grey.

        Returns:
            ``(canvas, people, input_to_image, image_size)``.
        """
        height, width = self.input_size
        tile, scale, size = self._load(index, area)
        shape = tf.shape(tile)
        h, w = shape[0], shape[1]
        top, left = (height - h) // 2, (width - w) // 2
        canvas = tf.pad(
            tile,
            [[top, height - h - top], [left, width - w - left], [0, 0]],
            constant_values=FILL_VALUE,
        )
        canvas = tf.ensure_shape(canvas, (height, width, 3))
        offset = tf.stack([left, top])
        people = self._people(index, scale, tf.cast(offset, tf.float32))
        # Input pixel -> image pixel (centres map to centres), in float64
        # so that it inverts the resize to the last bit of float32.
        scale = tf.cast(tf.stack([w, h]), tf.float64)
        scale = scale / tf.cast(tf.stack([size[1], size[0]]), tf.float64)
        shift = 0.5 * scale - 0.5 + tf.cast(offset, tf.float64)
        zero = tf.zeros([], tf.float64)
        back = tf.stack(
            [
                tf.stack([1.0 / scale[0], zero, -shift[0] / scale[0]]),
                tf.stack([zero, 1.0 / scale[1], -shift[1] / scale[1]]),
            ]
        )
        return canvas, people, tf.cast(back, tf.float32), size

    def _mosaic_canvas(self, indices, center):
        """The official 4-image mosaic on a (2H, 2W) grey canvas.

        Image i's corner touches the centre: top-left, top-right,
        bottom-left, bottom-right; parts beyond the canvas are cut.
        """
        height, width = self.input_size
        xc, yc = tf.unstack(tf.cast(center, tf.int32))
        quads, boxes, keypoints, valid = [], [], [], []
        for i in range(4):
            tile, scale, _ = self._load(indices[i], area=False)
            shape = tf.shape(tile)
            h, w = shape[0], shape[1]
            right, bottom = i in (1, 3), i in (2, 3)
            qw = 2 * width - xc if right else xc
            qh = 2 * height - yc if bottom else yc
            wc, hc = tf.minimum(w, qw), tf.minimum(h, qh)
            x0 = 0 if right else w - wc
            y0 = 0 if bottom else h - hc
            crop = tile[y0 : y0 + hc, x0 : x0 + wc]
            pad_x = [0, qw - wc] if right else [qw - wc, 0]
            pad_y = [0, qh - hc] if bottom else [qh - hc, 0]
            quads.append(
                tf.pad(crop, [pad_y, pad_x, [0, 0]], constant_values=FILL_VALUE)
            )
            offset = tf.cast(
                tf.stack([xc if right else xc - w, yc if bottom else yc - h]),
                tf.float32,
            )
            people = self._people(indices[i], scale, offset)
            boxes.append(people[0])
            keypoints.append(people[1])
            valid.append(people[2])
        canvas = tf.concat(
            [tf.concat(quads[:2], axis=1), tf.concat(quads[2:], axis=1)],
            axis=0,
        )
        canvas = tf.ensure_shape(canvas, (2 * height, 2 * width, 3))
        limit = tf.constant([2.0 * width, 2.0 * height])
        boxes = tf.concat(boxes, axis=0)
        boxes = tf.concat(
            [
                tf.clip_by_value(boxes[:, :2], 0.0, limit),
                tf.clip_by_value(boxes[:, 2:], 0.0, limit),
            ],
            axis=-1,
        )
        # Joints on the parts that were cut are no longer in the picture.
        keypoints = tf.concat(keypoints, axis=0)
        xy = keypoints[..., :2]
        inside = tf.reduce_all((xy >= 0.0) & (xy <= limit), axis=-1)
        keep = inside & (keypoints[..., 2] > 0)
        keypoints = tf.where(keep[..., None], keypoints, 0.0)
        return canvas, (boxes, keypoints, tf.concat(valid, axis=0))

    # -- one image -----------------------------------------------------

    def _load(self, index, area):
        """Decodes an image and resizes it to fit the input.

        The official ``load_image``: the scale is the largest that fits,
        the size rounded down (at least one pixel); area averaging when
        shrinking for evaluation, bilinear otherwise; uint8 like OpenCV.

        Returns:
            ``(tile, scale, size)``: (h, w, 3) uint8, (2,) float32 the x
            and y scale of the resize and (2,) int32 the image's (height,
            width).
        """
        height, width = self.input_size
        image = _decode(tf.io.read_file(self.paths[index]))
        original = tf.shape(image)[:2]
        shape = tf.cast(original, tf.float64)
        ratio = tf.minimum(height / shape[0], width / shape[1])
        size = tf.maximum(tf.floor(shape * ratio), 1.0)
        target = tf.cast(size, tf.int32)

        def bilinear():
            return tf.image.resize(image, target, method="bilinear")

        if area:
            resized = tf.cond(
                ratio < 1.0,
                lambda: tf.image.resize(image, target, method="area"),
                bilinear,
            )
        else:
            resized = bilinear()
        tile = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
        scale = tf.cast(size[::-1] / shape[::-1], tf.float32)
        return tile, scale, original

    def _people(self, index, scale, offset):
        """An image's people, moved by a resize and a shift, P rows."""
        start = self.splits[index]
        count = self.splits[index + 1] - start
        boxes = self.boxes[start : start + count]
        keypoints = self.keypoints[start : start + count]
        pad = self.max_people - tf.cast(count, tf.int32)
        boxes = tf.pad(boxes, [[0, pad], [0, 0]])
        keypoints = tf.pad(keypoints, [[0, pad], [0, 0], [0, 0]])
        p, k = self.max_people, self.keypoints.shape[1]
        boxes = tf.ensure_shape(boxes, (p, 4))
        keypoints = tf.ensure_shape(keypoints, (p, k, 3))
        # Pixel centres map to pixel centres: x -> (x + 0.5) * s - 0.5.
        shift = 0.5 * scale - 0.5 + offset
        boxes = boxes * tf.tile(scale, [2]) + tf.tile(shift, [2])
        vis = keypoints[..., 2:]
        xy = tf.where(vis > 0, keypoints[..., :2] * scale + shift, 0.0)
        valid = tf.range(p) < tf.cast(count, tf.int32)
        return boxes, tf.concat([xy, vis], axis=-1), valid


def _decode(raw):
    """RGB uint8 pixels of a JPEG (OpenCV's exact DCT) or another image."""

    def jpeg():
        return tf.io.decode_jpeg(
            raw,
            channels=3,
            dct_method="INTEGER_ACCURATE",
            try_recover_truncated=True,
            acceptable_fraction=0.0,
        )

    def other():
        return tf.io.decode_image(raw, channels=3, expand_animations=False)

    is_jpeg = tf.strings.substr(raw, 0, 3) == b"\xff\xd8\xff"
    return tf.ensure_shape(tf.cond(is_jpeg, jpeg, other), (None, None, 3))


def _targets(boxes, keypoints, valid, max_people):
    """The contract's targets: P rows, real people first, padding zero.

    Beyond P people (a mosaic of crowded images) the largest boxes stay.
    """
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = tf.argsort(
        tf.where(valid, area, -1.0), direction="DESCENDING", stable=True
    )
    keep = valid & (tf.math.invert_permutation(order) < max_people)
    # The kept rows first, in their original order.
    rows = tf.argsort(tf.cast(~keep, tf.int32), stable=True)[:max_people]
    keep = tf.gather(keep, rows)
    mask = tf.cast(keep, tf.float32)
    return {
        "boxes": tf.gather(boxes, rows) * mask[:, None],
        "keypoints": tf.gather(keypoints, rows) * mask[:, None, None],
        "valid": mask,
    }
