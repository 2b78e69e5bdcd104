"""``tf.data`` pipelines that feed top-down pose estimators.

One element per person: read and decode the JPEG, draw the official random
crop (training), warp the crop, normalise it and encode the heatmap
targets. All of it is TensorFlow ops, so it runs in parallel without the
Python lock. Feeds ``model.fit`` on any Keras backend.

Shape letters: B batch, K keypoints, (H, W) input, (h, w) heatmap.
"""

from __future__ import annotations

import functools
import os
import secrets
from typing import Any

import numpy as np
import tensorflow as tf

from kerapose.codecs.msra_heatmap import MSRAHeatmap
from kerapose.data.coco import load_coco_instances
from kerapose.data.heatmap_targets import encode_heatmaps_tf
from kerapose.data.keypoint_specs import KeypointSpec
from kerapose.data.transforms import AugmentConfig
from kerapose.data.transforms import affine_points
from kerapose.data.transforms import _warp_axis_aligned
from kerapose.data.transforms import _warp_projective
from kerapose.data.transforms import augment
from kerapose.data.transforms import compose_affine
from kerapose.data.transforms import flip_matrix
from kerapose.data.transforms import get_affine_matrix
from kerapose.data.transforms import get_inverse_affine
from kerapose.data.transforms import normalize_image

__all__ = ["build_top_down_dataset", "make_top_down_dataset"]

_META_KEYS = ("center", "scale", "image_id", "annotation_id", "score", "area")


def build_top_down_dataset(
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    codec: MSRAHeatmap,
    spec: KeypointSpec | str | None = None,
    batch_size: int = 32,
    training: bool = True,
    seed: int | None = None,
    det_file: str | os.PathLike | None = None,
    det_score_threshold: float = 0.0,
    shuffle_buffer: int | None = None,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    include_meta: bool = False,
    augment_config: AugmentConfig | None = None,
    drop_remainder: bool | None = None,
    check_images: str = "header",
    verbose: bool = True,
    return_report: bool = False,
) -> tf.data.Dataset | tuple[tf.data.Dataset, Any]:
    """Builds the top-down training or evaluation dataset of a COCO file.

    Training elements are ``(images, heatmaps, keypoint_weights)``, the
    ``(x, y, sample_weight)`` triple ``model.fit`` expects: images (B, H,
    W, 3) float32 normalised with the ImageNet mean/std, heatmaps (B, h,
    w, K) and weights (B, K). Evaluation (``training=False``) uses no
    augmentation and no shuffling; with ``include_meta`` its elements are
    ``(images, meta)`` where ``meta`` holds ``center`` (B, 2), ``scale``
    (B, 2), ``image_id``, ``annotation_id``, ``score`` and ``area`` (B,)
    to map predictions back to the image.

    Images that fail to decode despite the loader's checks are dropped
    with a logged warning instead of stopping the epoch.

    Args:
        ann_file: COCO keypoint annotation JSON.
        image_dir: Folder of the images.
        codec: :class:`~kerapose.codecs.MSRAHeatmap`; sets the input and
            heatmap sizes.
        spec: Keypoint spec or name; defaults to the file's keypoint count.
        batch_size: Batch size.
        training: Augment, shuffle, and use train-mode filtering.
        seed: Makes shuffling and augmentation reproducible: two datasets
            built with the same seed give identical batches, epoch by
            epoch (each epoch still differs from the previous one).
        det_file: Detection results for evaluation (``training=False``).
        det_score_threshold: Lowest detection score kept.
        shuffle_buffer: Shuffle buffer size. Defaults to all instances (an
            element is a few numbers and a path, not an image).
        num_parallel_calls: Parallelism of the per-person map.
        include_meta: Evaluation only: yield ``(images, meta)``.
        augment_config: Training augmentation. Defaults to the official
            recipe, ``AugmentConfig()``.
        drop_remainder: Drop a last partial batch. Defaults to
            ``training`` (fixed shapes avoid recompiling).
        check_images: Image checks of the loader (see
            :func:`~kerapose.data.coco.load_coco_instances`).
        verbose: Print the loader's report once.
        return_report: Also return the :class:`~kerapose.data.coco.
            LoadReport`.

    Returns:
        The ``tf.data.Dataset``, or ``(dataset, report)``.
    """
    instances, report = load_coco_instances(
        ann_file,
        image_dir,
        spec=spec,
        mode="train" if training else "eval",
        det_file=det_file,
        det_score_threshold=det_score_threshold,
        input_size=codec.input_size,
        check_images=check_images,
    )
    if verbose:
        print(report)
    dataset = make_top_down_dataset(
        instances,
        codec,
        report.spec,
        batch_size=batch_size,
        training=training,
        seed=seed,
        shuffle_buffer=shuffle_buffer,
        num_parallel_calls=num_parallel_calls,
        include_meta=include_meta,
        augment_config=augment_config,
        drop_remainder=drop_remainder,
    )
    return (dataset, report) if return_report else dataset


def make_top_down_dataset(
    instances: dict[str, np.ndarray],
    codec: MSRAHeatmap,
    spec: KeypointSpec,
    batch_size: int = 32,
    training: bool = True,
    seed: int | None = None,
    shuffle_buffer: int | None = None,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    include_meta: bool = False,
    augment_config: AugmentConfig | None = None,
    drop_remainder: bool | None = None,
) -> tf.data.Dataset:
    """:func:`build_top_down_dataset` from already loaded instances.

    Args:
        instances: The dict of :func:`~kerapose.data.coco.
            load_coco_instances`.
        codec: Heatmap codec.
        spec: Keypoint spec of the instances.
        batch_size: See :func:`build_top_down_dataset`.
        training: See :func:`build_top_down_dataset`.
        seed: See :func:`build_top_down_dataset`.
        shuffle_buffer: See :func:`build_top_down_dataset`.
        num_parallel_calls: See :func:`build_top_down_dataset`.
        include_meta: See :func:`build_top_down_dataset`.
        augment_config: See :func:`build_top_down_dataset`.
        drop_remainder: See :func:`build_top_down_dataset`.

    Returns:
        The batched, prefetched ``tf.data.Dataset``.
    """
    if include_meta and training:
        raise ValueError(
            "include_meta=True is for evaluation (training=False): "
            "augmented crops cannot be mapped back with center/scale."
        )
    num = len(instances["image_path"])
    if instances["keypoints"].shape[1:] != (spec.num_keypoints, 2):
        raise ValueError(
            f"instances have keypoints of shape "
            f"{instances['keypoints'].shape[1:]}, spec {spec.name!r} wants "
            f"({spec.num_keypoints}, 2)."
        )
    if drop_remainder is None:
        drop_remainder = training
    keys = ("image_path", "center", "scale", "keypoints", "visibility")
    keys += _META_KEYS[2:] if include_meta else ()
    ds = tf.data.Dataset.from_tensor_slices({k: instances[k] for k in keys})
    stages = _Stages(codec, spec, training, augment_config or AugmentConfig())
    if training:
        if seed is None:
            seed = secrets.randbits(31)
        ds = ds.shuffle(
            shuffle_buffer or max(num, 1),
            seed=seed,
            reshuffle_each_iteration=True,
        )
    # Per-element tf.data ops cost microseconds each however small they
    # are, so everything that need not touch pixels one image at a time
    # (augmentation, matrices, heatmaps, normalisation) runs once per
    # batch, vectorised. Only read + decode + warp stay per element.
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if training:
        # One fresh random number per batch and epoch; with the batch
        # index it seeds the stateless augmentation ops.
        draws = tf.data.Dataset.random(
            seed=seed, rerandomize_each_iteration=True
        )
        ds = tf.data.Dataset.zip(ds, draws).enumerate()
        ds = ds.map(
            lambda i, pair: stages.geometry(pair[0], tf.stack([pair[1], i]))
        )
    else:
        ds = ds.map(lambda batch: stages.geometry(batch, None))
    ds = ds.unbatch()
    # Every instance comes out (the loader screened the files), so the
    # length is known: Keras shows the epoch's total and `len()` works.
    count = num - num % batch_size if drop_remainder else num
    ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    ds = ds.map(
        stages.crop, num_parallel_calls=num_parallel_calls, deterministic=True
    )
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(
        functools.partial(stages.finish, include_meta=include_meta),
        num_parallel_calls=num_parallel_calls,
        deterministic=True,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


class _Stages:
    """The pipeline's maps: batched geometry, per-image crop, batched end."""

    def __init__(self, codec, spec, training, config):
        self.codec = codec
        self.spec = spec
        self.training = training
        self.config = config
        height, width = codec.input_size
        self.aspect_ratio = width / height

    def geometry(self, batch, seed):
        """Augmentation, crop matrices and source boxes of a batch."""
        center = batch["center"]
        sample = {
            "center": center,
            "scale": batch["scale"],
            "keypoints": batch["keypoints"],
            "visibility": batch["visibility"],
            # The mirror axis cancels out of the crop matrix and the crop
            # keypoints (the flip is folded into the warp below), so any
            # width will do: the image need not be read yet.
            "image_width": tf.zeros_like(center[:, 0]),
            "rotation": tf.zeros_like(center[:, 0]),
            "flip": tf.zeros_like(center[:, 0], tf.bool),
        }
        if self.training:
            sample = augment(
                sample, seed, self.spec, self.aspect_ratio, self.config
            )
        size = self.codec.input_size
        matrix = get_affine_matrix(
            sample["center"], sample["scale"], sample["rotation"], size
        )
        # The flip is folded into the warp: no mirrored copy of the image.
        image_matrix = tf.where(
            sample["flip"][:, None, None],
            compose_affine(matrix, flip_matrix(sample["image_width"])),
            matrix,
        )
        out = {
            "image_path": batch["image_path"],
            "inverse": get_inverse_affine(image_matrix),
            "axis_aligned": tf.equal(sample["rotation"], 0.0),
            "box": _source_box(image_matrix, size),
            "keypoints": affine_points(sample["keypoints"], matrix[:, None]),
            "visibility": sample["visibility"],
        }
        out.update({k: batch[k] for k in _META_KEYS if k in batch})
        return out

    def crop(self, elem):
        """Reads, decodes and warps one image: the only per-element map."""
        raw = tf.io.read_file(elem["image_path"])
        window = _clip_box(elem["box"], _image_shape(raw))
        image = _decode_window(raw, window)
        # Crop pixel -> window pixel.
        offset = tf.cast(tf.stack([window[1], window[0]]), tf.float32)
        inverse = tf.concat(
            [elem["inverse"][:, :2], (elem["inverse"][:, 2] - offset)[:, None]],
            axis=1,
        )
        size = self.codec.input_size
        crop = tf.cond(
            elem["axis_aligned"],
            lambda: _warp_axis_aligned(image, inverse, size),
            lambda: _warp_projective(image, inverse, size),
        )
        out = dict(elem)
        out["image"] = tf.ensure_shape(crop, (*size, 3))
        return out

    def finish(self, batch, include_meta):
        """Normalisation and heatmap targets of a batch."""
        images = normalize_image(batch["image"])
        if include_meta:
            return images, {k: batch[k] for k in _META_KEYS if k in batch}
        heatmaps, weights = encode_heatmaps_tf(
            batch["keypoints"], batch["visibility"], self.codec
        )
        return images, heatmaps, weights


def _is_jpeg(raw):
    return tf.strings.substr(raw, 0, 3) == b"\xff\xd8\xff"


def _image_shape(raw):
    """(height, width) from the JPEG or PNG header, without decoding."""

    def png_shape():
        # IHDR: big-endian uint32 width and height at bytes 16-23.
        b = tf.cast(
            tf.io.decode_raw(tf.strings.substr(raw, 16, 8), tf.uint8), tf.int32
        )
        width = b[0] * 2**24 + b[1] * 2**16 + b[2] * 2**8 + b[3]
        height = b[4] * 2**24 + b[5] * 2**16 + b[6] * 2**8 + b[7]
        return tf.stack([height, width])

    return tf.cond(
        _is_jpeg(raw), lambda: tf.io.extract_jpeg_shape(raw)[:2], png_shape
    )


def _decode_window(raw, window):
    """RGB pixels of ``window`` = ``[y, x, h, w]``, uint8.

    JPEGs decode only the window (people are often small); that is exact,
    as libjpeg decodes the window's blocks the same way. INTEGER_ACCURATE
    matches OpenCV, which the official code uses.
    """

    def jpeg():
        return tf.io.decode_and_crop_jpeg(
            raw, window, channels=3, dct_method="INTEGER_ACCURATE"
        )

    def png():
        image = tf.io.decode_png(raw, channels=3, dtype=tf.uint8)
        return tf.slice(
            image, [window[0], window[1], 0], [window[2], window[3], 3]
        )

    return tf.cond(_is_jpeg(raw), jpeg, png)


def _source_box(matrix, output_size, margin=2):
    """(B, 4) ``[x0, y0, x1, y1]`` image pixels a warp can sample, unclipped.

    The crop's corner pixels are mapped back to the image; ``margin``
    covers the bilinear neighbours.
    """
    out_h, out_w = output_size
    corners = tf.constant(
        [[0, 0], [out_w - 1, 0], [0, out_h - 1], [out_w - 1, out_h - 1]],
        tf.float32,
    )
    points = affine_points(corners, get_inverse_affine(matrix)[:, None])
    # Far-off boxes are clipped to the image anyway; this keeps the int
    # cast defined.
    points = tf.clip_by_value(points, -1.0e8, 1.0e8)
    low = tf.floor(tf.reduce_min(points, -2)) - margin
    high = tf.math.ceil(tf.reduce_max(points, -2)) + margin
    return tf.cast(tf.concat([low, high], -1), tf.int32)


def _clip_box(box, shape):
    """``[y, x, h, w]`` window of ``box`` inside an image of ``shape``.

    A box wholly outside the image gets a one-pixel window at the nearest
    edge, more than one pixel away from every sample, so the crop stays
    all fill.
    """
    limit = tf.stack([shape[1], shape[0]]) - 1
    low = tf.clip_by_value(box[:2], 0, limit)
    high = tf.clip_by_value(box[2:], low, limit)
    size = high - low + 1
    return tf.stack([low[1], low[0], size[1], size[0]])


def _source_window(matrix, output_size, height, width, margin=2):
    """``[y, x, h, w]`` of the image pixels a warp of ``matrix`` samples."""
    box = _source_box(tf.convert_to_tensor(matrix)[None], output_size, margin)
    return _clip_box(box[0], tf.stack([height, width]))
