"""``tf.data`` pipelines that feed top-down pose estimators.

One sample per person: draw the official random crop (training), decode
the part of the JPEG it covers, warp and normalise it, and encode the
heatmap targets. All of it is TensorFlow ops, so it runs in parallel
without the Python lock. Feeds ``model.fit`` on any Keras backend.

Only read + decode + warp run once per person; the geometry before and the
heatmaps after run once per batch, vectorised, because tf.data charges
microseconds per op however small the op is.

Shape letters: B batch, K keypoints, (H, W) input, (h, w) heatmap.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import numpy as np
import tensorflow as tf

from kerapose.codecs.msra_heatmap import MSRAHeatmap
from kerapose.data.coco import BOX_PADDING
from kerapose.data.coco import load_coco_instances
from kerapose.data.keypoint_specs import KeypointSpec
from kerapose.data.multi_sigma_targets import encode_targets_tf
from kerapose.data.transforms import AugmentConfig
from kerapose.data.transforms import affine_points
from kerapose.data.transforms import augment
from kerapose.data.transforms import compose_affine
from kerapose.data.transforms import flip_matrix
from kerapose.data.transforms import get_affine_matrix
from kerapose.data.transforms import get_inverse_affine
from kerapose.data.transforms import warp_inverse

__all__ = ["build_top_down_dataset", "make_top_down_dataset"]

_META_KEYS = ("center", "scale", "image_id", "annotation_id", "score", "area")
_GEOMETRY_KEYS = ("image_path", "inverse", "box")


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
    keypoint_field: str = "keypoints",
    sigmas: Any = None,
) -> tf.data.Dataset | tuple[tf.data.Dataset, Any]:
    """Builds the top-down training or evaluation dataset of a COCO file.

    Training elements are ``(images, heatmaps, keypoint_weights)``, the
    ``(x, y, sample_weight)`` triple ``model.fit`` expects: images (B, H,
    W, 3) float32 normalised with the ImageNet mean/std, heatmaps (B, h,
    w, K) and weights (B, K); a codec with several sigmas
    (``MultiSigmaHeatmap``, RSN) gives heatmaps (B, T, h, w, K).
    Evaluation (``training=False``) uses no augmentation and no
    shuffling; with ``include_meta`` its elements are
    ``(images, meta)`` where ``meta`` holds ``center`` (B, 2), ``scale``
    (B, 2), ``image_id``, ``annotation_id``, ``score`` and ``area`` (B,)
    to map predictions back to the image.

    Every kept instance comes out once per epoch, so the dataset has a
    known length (``len(dataset)``, Keras' progress bar): the loader's
    image checks leave out (and count) unreadable files up front, and
    truncated JPEG data is decoded as far as it goes rather than raising.

    Args:
        ann_file: COCO keypoint annotation JSON.
        image_dir: Folder of the images.
        codec: :class:`~kerapose.codecs.MSRAHeatmap`; sets the input and
            heatmap sizes.
        spec: Keypoint spec or name; defaults to the one the file's
            keypoint names call for (see :func:`~kerapose.data.coco.
            load_coco_instances`).
        batch_size: Batch size.
        training: Augment, shuffle, and use train-mode filtering.
        seed: Makes shuffling and augmentation reproducible: two datasets
            built with the same seed give identical batches, epoch by
            epoch (each epoch still differs from the previous one).
        det_file: Detection results for evaluation (``training=False``).
        det_score_threshold: Lowest detection score kept.
        shuffle_buffer: Shuffle buffer size. Defaults to all instances (an
            element is a few numbers and a path, not an image).
        num_parallel_calls: Parallelism of the maps (the per-person decode
            and warp is the one that counts).
        include_meta: Evaluation only: yield ``(images, meta)``.
        augment_config: Training augmentation. Defaults to the official
            recipe, ``AugmentConfig()``.
        drop_remainder: Drop a last partial batch. Defaults to
            ``training`` (fixed shapes avoid recompiling).
        check_images: Image checks of the loader, ``"header"`` or
            ``"decode"`` (see :func:`~kerapose.data.coco.
            load_coco_instances`); ``"exists"`` is refused, as a file that
            is not an image would stop the epoch.
        verbose: Print the loader's report once.
        return_report: Also return the :class:`~kerapose.data.coco.
            LoadReport`.
        keypoint_field: Annotation field of the keypoints, e.g.
            ``"keypoints_21"`` (Human-Art).
        sigmas: OKS sigmas for a spec built from the file's keypoint names
            (see :func:`~kerapose.data.coco.load_coco_instances`).

    Returns:
        The ``tf.data.Dataset``, or ``(dataset, report)``.
    """
    if check_images == "exists":
        raise ValueError(
            "check_images='exists' lets files that are not images through, "
            "and one would stop the epoch; use 'header' (the default, "
            "cheap) or 'decode'."
        )
    instances, report = load_coco_instances(
        ann_file,
        image_dir,
        spec=spec,
        mode="train" if training else "eval",
        det_file=det_file,
        det_score_threshold=det_score_threshold,
        input_size=codec.input_size,
        check_images=check_images,
        keypoint_field=keypoint_field,
        sigmas=sigmas,
        box_padding=getattr(codec, "box_padding", BOX_PADDING),
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

    The image files must have passed the loader's ``"header"`` or
    ``"decode"`` check: the dataset skips nothing, and a file that is not
    an image stops the epoch with an error.

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
    # Batch first: the geometry of a whole batch is a few dozen vectorised
    # ops, where per element it cost about as much as the JPEG decode.
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    parallel = {"num_parallel_calls": num_parallel_calls, "deterministic": True}
    if training:
        # One fresh random number per batch and epoch; with the batch
        # index it seeds the stateless augmentation ops.
        draws = tf.data.Dataset.random(
            seed=seed, rerandomize_each_iteration=True
        )
        ds = tf.data.Dataset.zip(ds, draws).enumerate()
        ds = ds.map(
            lambda i, pair: stages.geometry(pair[0], tf.stack([pair[1], i])),
            **parallel,
        )
    else:
        ds = ds.map(lambda batch: stages.geometry(batch, None), **parallel)
    ds = ds.unbatch()
    # Every instance comes out (the loader screened the files and nothing
    # is filtered), so the length is known: `len(dataset)` works and Keras
    # shows each epoch's total.
    count = num - num % batch_size if drop_remainder else num
    ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    ds = ds.map(stages.crop, **parallel)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda batch: stages.finish(batch, include_meta), **parallel)
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
            "box": _source_box(image_matrix, size),
            "keypoints": affine_points(sample["keypoints"], matrix[:, None]),
            "visibility": sample["visibility"],
        }
        out.update({k: batch[k] for k in _META_KEYS if k in batch})
        return out

    def crop(self, elem):
        """Reads, decodes and warps one image: the only per-element map."""
        raw = tf.io.read_file(elem["image_path"])
        image, window = _decode_box(raw, elem["box"])
        # Crop pixel -> window pixel.
        offset = tf.cast(tf.stack([window[1], window[0]]), tf.float32)
        inverse = elem["inverse"] - tf.pad(offset[:, None], [[0, 0], [2, 0]])
        size = self.codec.input_size
        # Only what the batched end needs goes on through batching.
        out = {k: v for k, v in elem.items() if k not in _GEOMETRY_KEYS}
        out["image"] = warp_inverse(image, inverse, size, normalize=True)
        return out

    def finish(self, batch, include_meta):
        """Heatmap targets of a batch."""
        images = batch["image"]
        if include_meta:
            return images, {k: batch[k] for k in _META_KEYS if k in batch}
        heatmaps, weights = encode_targets_tf(
            batch["keypoints"], batch["visibility"], self.codec
        )
        return images, heatmaps, weights


def _decode_box(raw, box):
    """RGB pixels (uint8) of ``box`` clipped to the image, and the window.

    JPEGs decode only the window (people are often small); that is exact,
    as libjpeg decodes the window's blocks the same way. INTEGER_ACCURATE
    matches OpenCV, which the official code uses. The loader already left
    out files that do not decode whole; recovering truncated data here
    means a file damaged since then still cannot stop the epoch.
    """

    def jpeg():
        window = _clip_box(box, tf.io.extract_jpeg_shape(raw)[:2])
        pixels = tf.io.decode_and_crop_jpeg(
            raw,
            window,
            channels=3,
            dct_method="INTEGER_ACCURATE",
            try_recover_truncated=True,
            acceptable_fraction=0.0,
        )
        return pixels, window

    def png():
        image = tf.io.decode_png(raw, channels=3, dtype=tf.uint8)
        window = _clip_box(box, tf.shape(image)[:2])
        pixels = tf.slice(
            image, [window[0], window[1], 0], [window[2], window[3], 3]
        )
        return pixels, window

    is_jpeg = tf.strings.substr(raw, 0, 3) == b"\xff\xd8\xff"
    return tf.cond(is_jpeg, jpeg, png)


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
