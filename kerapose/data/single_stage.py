"""``tf.data`` pipeline that feeds single-stage (YOLO-Pose) estimators.

One sample per image, as the official loader: training builds a 4-image
mosaic (or a letterbox of the image alone), warps it with a random
affine, drops the people that left, jitters HSV and flips; evaluation
letterboxes the image only. Every step is TensorFlow ops, so it runs in
parallel without the Python lock and feeds ``model.fit`` on any Keras
backend.

Images are resized so that they fit the input (the official
``load_image``: bilinear, or area averaging when shrinking for
evaluation), rounded to uint8 like OpenCV's, and padded with grey 114.
Points follow kerapose's pixel convention (integer coordinates are pixel
centres), so every step moves the labels exactly as it moves the pixels.

Shape letters: B batch, P people per image (padded), K keypoints, (H, W)
input.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import numpy as np
import tensorflow as tf

from kerapose.data.coco_images import load_coco_images
from kerapose.data.keypoint_specs import KeypointSpec
from kerapose.data.single_stage_augment import SingleStageAugmentConfig
from kerapose.data.single_stage_sampler import SingleStageSampler

__all__ = ["make_single_stage_dataset", "single_stage_dataset_from_records"]


def make_single_stage_dataset(
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    input_size: tuple[int, int] = (640, 640),
    batch_size: int = 16,
    spec: KeypointSpec | str | None = None,
    max_people: int = 30,
    training: bool = True,
    augment: SingleStageAugmentConfig | None = None,
    shuffle: bool | None = None,
    seed: int | None = None,
    include_meta: bool = False,
    drop_remainder: bool | None = None,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    keep_empty: bool = True,
    check_images: str = "header",
    verbose: bool = False,
    keypoint_field: str = "keypoints",
    sigmas: Any = None,
) -> tuple[tf.data.Dataset, Any]:
    """Builds the single-stage training or evaluation dataset of a COCO file.

    Elements are ``(images, targets)``: images (B, H, W, 3) float32 RGB in
    [0, 1]; targets a dict of ``boxes`` (B, P, 4) ``[x1, y1, x2, y2]``,
    ``keypoints`` (B, P, K, 3) ``x, y, v`` (``v = 0`` and ``x = y = 0``
    for joints unlabelled or outside the image) and ``valid`` (B, P), all
    float32 in input pixels, padding rows zero. Every image comes out once
    per epoch (``len(dataset)`` is known).

    Training (the official recipe, :class:`SingleStageAugmentConfig`):
    a mosaic of the image and three others drawn at random (or the
    letterboxed image alone), a random affine (people whose box becomes
    degenerate are dropped), HSV jitter and a left-right flip that swaps
    left and right joints. A mosaic can hold more than P people: the
    largest P boxes are kept. Evaluation (``training=False``): the
    letterbox alone, every person kept; with ``include_meta`` the elements
    are ``(images, meta)``, meta holding ``image_id`` (B,) int64,
    ``image_size`` (B, 2) int32 (height, width of the file) and
    ``input_to_image`` (B, 2, 3) float32, the matrix that maps input
    pixels ``(x, y, 1)`` back to the image's.

    Args:
        ann_file: COCO keypoint annotation JSON.
        image_dir: Folder of the images.
        input_size: ``(H, W)`` network input.
        batch_size: Batch size.
        spec: Keypoint spec or name; defaults to the file's (see
            :func:`~kerapose.data.coco_images.load_coco_images`).
        max_people: P, people per image (the reader keeps the largest).
        training: Augment (and shuffle by default).
        augment: Training augmentation; defaults to the official recipe,
            ``SingleStageAugmentConfig()``. Refused with ``training=False``.
        shuffle: Shuffle the images each epoch. Defaults to ``training``.
        seed: Makes shuffling and augmentation reproducible: two datasets
            built with the same seed give identical batches, epoch by
            epoch (each epoch differs from the previous one).
        include_meta: Evaluation only: yield ``(images, meta)``.
        drop_remainder: Drop a last partial batch. Defaults to
            ``training``.
        num_parallel_calls: Parallelism of the per-image map.
        keep_empty: Keep images without people (negatives).
        check_images: Image checks of the reader, ``"header"`` or
            ``"decode"``; ``"exists"`` is refused, as a file that is not
            an image would stop the epoch.
        verbose: Print the reader's report.
        keypoint_field: Annotation field of the keypoints.
        sigmas: OKS sigmas for a spec built from the file's names.

    Returns:
        ``(dataset, report)``, the report the reader's
        :class:`~kerapose.data.coco.LoadReport` (annotations and images
        left out, by reason).
    """
    if check_images == "exists":
        raise ValueError(
            "check_images='exists' lets files that are not images through, "
            "and one would stop the epoch; use 'header' (the default, "
            "cheap) or 'decode'."
        )
    records, report = load_coco_images(
        ann_file,
        image_dir,
        spec=spec,
        max_people=max_people,
        keep_empty=keep_empty,
        check_images=check_images,
        keypoint_field=keypoint_field,
        sigmas=sigmas,
    )
    if verbose:
        print(report)
    dataset = single_stage_dataset_from_records(
        records,
        report.spec,
        input_size=input_size,
        batch_size=batch_size,
        training=training,
        augment=augment,
        shuffle=shuffle,
        seed=seed,
        include_meta=include_meta,
        drop_remainder=drop_remainder,
        num_parallel_calls=num_parallel_calls,
    )
    return dataset, report


def single_stage_dataset_from_records(
    records: dict[str, np.ndarray],
    spec: KeypointSpec,
    input_size: tuple[int, int] = (640, 640),
    batch_size: int = 16,
    training: bool = True,
    augment: SingleStageAugmentConfig | None = None,
    shuffle: bool | None = None,
    seed: int | None = None,
    include_meta: bool = False,
    drop_remainder: bool | None = None,
    num_parallel_calls: int = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """:func:`make_single_stage_dataset` from already loaded records.

    Args:
        records: The dict of :func:`~kerapose.data.coco_images.
            load_coco_images` (``image_path``, ``image_id``, ``boxes``
            ``[x, y, w, h]``, ``keypoints``, ``valid`` are used). The files
            must be readable images: nothing is skipped here.
        spec: Keypoint spec of the records (flip indices).
        input_size: See :func:`make_single_stage_dataset`.
        batch_size: See :func:`make_single_stage_dataset`.
        training: See :func:`make_single_stage_dataset`.
        augment: See :func:`make_single_stage_dataset`.
        shuffle: See :func:`make_single_stage_dataset`.
        seed: See :func:`make_single_stage_dataset`.
        include_meta: See :func:`make_single_stage_dataset`.
        drop_remainder: See :func:`make_single_stage_dataset`.
        num_parallel_calls: See :func:`make_single_stage_dataset`.

    Returns:
        The batched, prefetched ``tf.data.Dataset``.
    """
    input_size = _check_size(input_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ValueError(f"batch_size must be an int, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if include_meta and training:
        raise ValueError(
            "include_meta=True is for evaluation (training=False): a "
            "mosaic or an augmented image has no one matrix back to a file."
        )
    if augment is not None and not training:
        raise ValueError(
            "augment is for training; evaluation (training=False) only "
            "letterboxes. Drop augment, or set training=True."
        )
    if augment is None:
        augment = SingleStageAugmentConfig()
    if not isinstance(augment, SingleStageAugmentConfig):
        raise ValueError(
            f"augment must be a SingleStageAugmentConfig, got "
            f"{type(augment).__name__}."
        )
    sampler = SingleStageSampler(records, spec, input_size, augment)
    num = sampler.num_images
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder
    if seed is None and (training or shuffle):
        seed = secrets.randbits(31)
    ds = tf.data.Dataset.range(num)
    if shuffle:
        ds = ds.shuffle(num, seed=seed, reshuffle_each_iteration=True)
    parallel = {"num_parallel_calls": num_parallel_calls, "deterministic": True}
    if training:
        # One fresh random number per image and epoch; with the position
        # in the epoch it seeds the stateless augmentation ops.
        draws = tf.data.Dataset.random(
            seed=seed, rerandomize_each_iteration=True
        )
        ds = tf.data.Dataset.zip(ds, draws).enumerate()
        ds = ds.map(
            lambda i, pair: sampler.train_sample(
                pair[0], tf.stack([pair[1], i])
            ),
            **parallel,
        )
    else:
        ds = ds.map(
            lambda index: sampler.eval_sample(index, include_meta), **parallel
        )
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)


def _check_size(input_size):
    size = tuple(input_size) if isinstance(input_size, (list, tuple)) else ()
    if len(size) != 2 or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
        for s in size
    ):
        raise ValueError(
            f"input_size must be (height, width), two positive ints, got "
            f"{input_size!r}."
        )
    return int(size[0]), int(size[1])
