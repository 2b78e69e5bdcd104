"""``tf.data`` pipeline that feeds bottom-up pose estimators.

One sample per image, every person at once (HigherHRNet, Associative
Embedding): the official whole-image random affine (scale, rotation,
translation) to a square input, the horizontal flip with the left/right
joint swap, and per output resolution the multi-person heatmaps, the
warped ignore mask and (at the first resolution, where the tags are) the
joint indices. Elements are ``(images, targets)``, the targets the dict
:class:`~kerapose.losses.BottomUpLoss` reads.

Shape letters: B batch, S input side, s_r output side of resolution r,
P people (padded), K keypoints.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from typing import Any

import numpy as np
import tensorflow as tf

from kerapose.data.bottom_up_targets import decode_ignore_mask
from kerapose.data.bottom_up_targets import encode_joint_indices
from kerapose.data.bottom_up_targets import encode_multi_person_heatmaps
from kerapose.data.bottom_up_targets import ignore_regions_to_runs
from kerapose.data.bottom_up_targets import warp_mask
from kerapose.data.coco_images import load_coco_images
from kerapose.data.keypoint_specs import KeypointSpec
from kerapose.data.pipelines import _decode_box
from kerapose.data.pipelines import _source_box
from kerapose.data.transforms import IMAGENET_MEAN
from kerapose.data.transforms import IMAGENET_STD
from kerapose.data.transforms import affine_points
from kerapose.data.transforms import compose_affine
from kerapose.data.transforms import flip_matrix
from kerapose.data.transforms import get_affine_matrix
from kerapose.data.transforms import get_inverse_affine
from kerapose.data.transforms import warp_inverse

__all__ = [
    "BottomUpAugmentConfig",
    "bottom_up_dataset_from_records",
    "make_bottom_up_dataset",
]

_SCALE_TYPES = ("short", "long")
_RECORD_KEYS = ("image_path", "image_size", "keypoints", "ignore_regions")


@dataclasses.dataclass(frozen=True)
class BottomUpAugmentConfig:
    """Whole-image augmentation of the official HigherHRNet COCO recipe.

    The image centre is mapped to the input centre; the input side covers
    ``scale_type`` (the short or long image side) times a uniform factor
    in ``[min_scale, max_scale]``, turned by a uniform angle in
    ``[-max_rotation, max_rotation]`` degrees and shifted by a whole
    number of pixels in ``[-t, t)``, ``t = max_translate * side / 200``.
    Evaluation uses the same mapping with factor 1 and nothing else.
    The Associative Embedding recipe uses ``max_scale=1.25`` and
    ``scale_type="long"`` (its colour jitter is not part of this
    pipeline).

    Attributes:
        max_rotation: Degrees (official 30).
        min_scale: Lowest scale factor (official 0.75).
        max_scale: Highest scale factor (official 1.5).
        scale_type: ``"short"`` (official HigherHRNet) or ``"long"``.
        max_translate: Translation per 200 px of side (official 40).
        flip_prob: Probability of a horizontal flip (official 0.5).
    """

    max_rotation: float = 30.0
    min_scale: float = 0.75
    max_scale: float = 1.5
    scale_type: str = "short"
    max_translate: float = 40.0
    flip_prob: float = 0.5

    def __post_init__(self):
        if self.scale_type not in _SCALE_TYPES:
            raise ValueError(
                f"scale_type must be one of {_SCALE_TYPES}, got "
                f"{self.scale_type!r}."
            )
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(
                "need 0 < min_scale <= max_scale, got "
                f"{self.min_scale} and {self.max_scale}."
            )
        if self.max_rotation < 0 or self.max_translate < 0:
            raise ValueError(
                "max_rotation and max_translate must be >= 0, got "
                f"{self.max_rotation} and {self.max_translate}."
            )
        if not 0 <= self.flip_prob <= 1:
            raise ValueError(
                f"flip_prob must be in [0, 1], got {self.flip_prob}."
            )


def make_bottom_up_dataset(
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    input_size: int = 512,
    output_sizes: tuple[int, ...] = (128, 256),
    batch_size: int = 12,
    spec: KeypointSpec | str | None = None,
    max_people: int = 30,
    training: bool = True,
    augment: BottomUpAugmentConfig | None = None,
    shuffle: bool | None = None,
    seed: int | None = None,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    sigma: float = 2.0,
    keep_empty: bool | None = None,
    check_images: str = "header",
    drop_remainder: bool | None = None,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    include_matrix: bool = False,
) -> tuple[tf.data.Dataset, Any]:
    """Builds the bottom-up training or evaluation dataset of a COCO file.

    Elements are ``(images, targets)``: images (B, S, S, 3) float32,
    ``(pixels / 255 - mean) / std``; targets a dict with, for each output
    resolution r (``output_sizes[r]``), ``heatmaps_r`` (B, s_r, s_r, K)
    and ``masks_r`` (B, s_r, s_r) float32 (1 = the pixel counts, 0 =
    crowd, person without keypoints, or outside the image), and
    ``joints`` (B, P, K, 2) int32 ``[y * s_0 + x, labelled]`` on the
    resolution-0 map. Defaults are the official HigherHRNet-W32 512
    recipe (``MAX_NUM_PEOPLE`` 30, ``SIGMA`` 2, ``OUTPUT_SIZE``
    [128, 256], 12 images per GPU).

    Evaluation (``training=False``) is the official non-training
    transform: the image centred, its short side (``scale_type``) fitted
    to the input, no augmentation, no shuffling, and every image (the
    last batch may be partial).

    Args:
        ann_file: COCO keypoint annotation JSON.
        image_dir: Folder of the images.
        input_size: S, the square input side.
        output_sizes: Side of each output resolution, the tag resolution
            first (HigherHRNet ``(S/4, S/2)``, hourglass ``(S/4,)``).
        batch_size: Images per batch.
        spec: Keypoint spec or its name; defaults to the file's.
        max_people: P (official 30); extra people (smallest first) are
            dropped and counted in the report.
        training: Augment and shuffle.
        augment: Augmentation settings; defaults to
            ``BottomUpAugmentConfig()``.
        shuffle: Shuffle the images each epoch. Defaults to ``training``.
        seed: Makes shuffling and augmentation reproducible: the same seed
            gives the same batches, epoch by epoch.
        mean: Per-channel mean of the model's preset, on [0, 1] pixels.
        std: Per-channel std of the model's preset; ``mean=(0, 0, 0),
            std=(1, 1, 1)`` gives the ``image / 255`` of the AE code.
        sigma: Gaussian sigma in output pixels, at every resolution.
        keep_empty: Keep images without people. Defaults to ``not
            training`` (the official training set drops them).
        check_images: The reader's image check, ``"header"`` or
            ``"decode"``.
        drop_remainder: Drop a last partial batch. Defaults to
            ``training``.
        num_parallel_calls: Parallelism of the per-image map.
        include_matrix: Add ``input_matrix`` (B, 2, 3) float32 to the
            targets, the image -> input affine (flip included), to map
            predictions back to the image or check the targets;
            :class:`~kerapose.losses.BottomUpLoss` ignores it.

    Returns:
        ``(dataset, report)``, the report the reader's
        :class:`~kerapose.data.coco.LoadReport`.
    """
    if check_images == "exists":
        raise ValueError(
            "check_images='exists' lets files that are not images through, "
            "and one would stop the epoch; use 'header' or 'decode'."
        )
    records, report = load_coco_images(
        ann_file,
        image_dir,
        spec=spec,
        max_people=max_people,
        keep_empty=(not training) if keep_empty is None else keep_empty,
        check_images=check_images,
    )
    dataset = bottom_up_dataset_from_records(
        records,
        report.spec,
        input_size=input_size,
        output_sizes=output_sizes,
        batch_size=batch_size,
        training=training,
        augment=augment,
        shuffle=shuffle,
        seed=seed,
        mean=mean,
        std=std,
        sigma=sigma,
        drop_remainder=drop_remainder,
        num_parallel_calls=num_parallel_calls,
        include_matrix=include_matrix,
    )
    return dataset, report


def bottom_up_dataset_from_records(
    records: dict[str, np.ndarray],
    spec: KeypointSpec,
    input_size: int = 512,
    output_sizes: tuple[int, ...] = (128, 256),
    batch_size: int = 12,
    training: bool = True,
    augment: BottomUpAugmentConfig | None = None,
    shuffle: bool | None = None,
    seed: int | None = None,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    sigma: float = 2.0,
    drop_remainder: bool | None = None,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    include_matrix: bool = False,
) -> tf.data.Dataset:
    """:func:`make_bottom_up_dataset` from already loaded records.

    Args:
        records: The dict of :func:`~kerapose.data.coco_images.
            load_coco_images` (``image_path``, ``image_size``,
            ``keypoints`` and ``ignore_regions`` are used); its files must
            have passed the reader's image check.
        spec: Keypoint spec of the records (flip pairs).
        Others: See :func:`make_bottom_up_dataset`.

    Returns:
        The batched, prefetched ``tf.data.Dataset``.
    """
    output_sizes = _check_sizes(input_size, output_sizes)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ValueError(f"batch_size must be an int, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}.")
    if augment is None:
        augment = BottomUpAugmentConfig()
    if not isinstance(augment, BottomUpAugmentConfig):
        raise ValueError(
            "augment must be a BottomUpAugmentConfig, got "
            f"{type(augment).__name__}."
        )
    missing = [k for k in _RECORD_KEYS if k not in records]
    if missing:
        raise ValueError(
            f"records lack {missing}; build them with load_coco_images."
        )
    kpts = records["keypoints"]
    if kpts.ndim != 4 or kpts.shape[2:] != (spec.num_keypoints, 3):
        raise ValueError(
            f"records have keypoints of shape {kpts.shape[1:]}, spec "
            f"{spec.name!r} wants (P, {spec.num_keypoints}, 3)."
        )
    encoder = _ImageEncoder(
        spec, input_size, output_sizes, augment, mean, std, sigma,
        include_matrix,
    )  # fmt: skip
    if shuffle is None:
        shuffle = training
    if drop_remainder is None:
        drop_remainder = training
    if seed is None:
        seed = secrets.randbits(31)
    num = len(records["image_path"])
    ds = tf.data.Dataset.from_tensor_slices(_slices(records))
    if shuffle:
        ds = ds.shuffle(max(num, 1), seed=seed, reshuffle_each_iteration=True)
    parallel = {"num_parallel_calls": num_parallel_calls, "deterministic": True}
    if training:
        # One fresh random number per image and epoch; with the position
        # in the epoch it seeds the stateless augmentation ops.
        draws = tf.data.Dataset.random(
            seed=seed, rerandomize_each_iteration=True
        )
        ds = tf.data.Dataset.zip(ds, draws).enumerate()
        ds = ds.map(
            lambda i, pair: encoder(pair[0], tf.stack([pair[1], i])),
            **parallel,
        )
    else:
        ds = ds.map(lambda elem: encoder(elem, None), **parallel)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)


def _slices(records):
    """The columns the pipeline reads; ignore regions as run lengths.

    The regions are rasterised here, once, with pycocotools: decoding run
    lengths per image is a few TensorFlow ops, where a Python call per
    image in the pipeline would hold the interpreter lock.
    """
    runs = [
        ignore_regions_to_runs(str(regions), h, w)
        for regions, (h, w) in zip(
            records["ignore_regions"], records["image_size"]
        )
    ]
    lengths = [len(r) for r in runs]
    values = np.concatenate(runs) if runs else np.zeros([0], np.int32)
    out = {k: records[k] for k in _RECORD_KEYS if k != "ignore_regions"}
    out["ignore_runs"] = tf.RaggedTensor.from_row_lengths(values, lengths)
    return out


def _check_sizes(input_size, output_sizes):
    def is_size(value):
        return not isinstance(value, bool) and isinstance(
            value, (int, np.integer)
        )

    if not is_size(input_size) or input_size < 1:
        raise ValueError(
            f"input_size must be a positive int (the square side), got "
            f"{input_size!r}."
        )
    if isinstance(output_sizes, (int, np.integer)):
        output_sizes = (output_sizes,)
    output_sizes = tuple(output_sizes)
    if not output_sizes or not all(is_size(s) and s >= 1 for s in output_sizes):
        raise ValueError(
            "output_sizes must be one or more positive ints (the side of "
            f"each output resolution), got {output_sizes!r}."
        )
    return tuple(int(s) for s in output_sizes)


class _ImageEncoder:
    """One image: draw the transform, warp image and masks, encode."""

    def __init__(
        self, spec, input_size, output_sizes, config, mean, std, sigma,
        include_matrix,
    ):  # fmt: skip
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(
                "mean and std need 3 values each (RGB, on [0, 1] pixels) "
                f"and a positive std, got {mean!r} and {std!r}."
            )
        self.flip_indices = tf.constant(spec.flip_indices, tf.int32)
        self.input_size = int(input_size)
        self.output_sizes = output_sizes
        self.config = config
        self.sigma = float(sigma)
        self.include_matrix = bool(include_matrix)
        self.gain = tf.constant([1.0 / (255.0 * s) for s in std], tf.float32)
        self.bias = tf.constant([-m / s for m, s in zip(mean, std)], tf.float32)

    def __call__(self, elem, seed):
        size = tf.cast(elem["image_size"], tf.float32)  # (h, w)
        center, scale, rotation, flip = self._draw(size, seed)
        sides = (self.input_size,) + self.output_sizes
        matrices = []
        for side in sides:
            matrix = get_affine_matrix(
                center, tf.stack([scale, scale]), rotation, (side, side)
            )
            flipped = compose_affine(flip_matrix(float(side)), matrix)
            matrices.append(tf.where(flip, flipped, matrix))

        kpts = tf.cast(elem["keypoints"], tf.float32)  # (P, K, 3)
        swapped = tf.gather(kpts, self.flip_indices, axis=1)
        kpts = tf.where(flip, swapped, kpts)
        labelled = kpts[..., 2]

        mask = decode_ignore_mask(
            elem["ignore_runs"], elem["image_size"][0], elem["image_size"][1]
        )
        targets = {}
        for r, (side, matrix) in enumerate(
            zip(self.output_sizes, matrices[1:])
        ):
            points = affine_points(kpts[..., :2], matrix)
            targets[f"heatmaps_{r}"] = encode_multi_person_heatmaps(
                points, labelled, (side, side), self.sigma
            )
            targets[f"masks_{r}"] = warp_mask(
                mask, get_inverse_affine(matrix), (side, side)
            )
            if r == 0:
                targets["joints"] = encode_joint_indices(
                    points, labelled, (side, side)
                )
        if self.include_matrix:
            targets["input_matrix"] = matrices[0]
        return self._image(elem["image_path"], matrices[0]), targets

    def _draw(self, size, seed):
        """Centre, scale (side / 200), rotation (degrees) and flip."""
        config = self.config
        height, width = size[0], size[1]
        center = tf.stack([width / 2.0, height / 2.0])
        if config.scale_type == "short":
            scale = tf.minimum(height, width) / 200.0
        else:
            scale = tf.maximum(height, width) / 200.0
        if seed is None:
            return center, scale, tf.constant(0.0), tf.constant(False)
        seeds = tf.random.experimental.stateless_split(
            tf.cast(seed, tf.int64), num=5
        )
        u = [tf.random.stateless_uniform([], seeds[i]) for i in range(5)]
        scale = scale * (
            u[0] * (config.max_scale - config.min_scale) + config.min_scale
        )
        rotation = (u[1] * 2.0 - 1.0) * config.max_rotation
        # numpy's randint(-t, t) with float bounds: integers in
        # [trunc(-t), trunc(t)), and 0 when t < 1.
        limit = tf.floor(config.max_translate * scale)
        shift = tf.floor(tf.stack([u[2], u[3]]) * 2.0 * limit) - limit
        center = center + shift
        flip = u[4] < config.flip_prob
        return center, scale, rotation, flip

    def _image(self, path, matrix):
        """Reads, decodes and warps the image to the normalised input."""
        side = self.input_size
        raw = tf.io.read_file(path)
        # Only the part of the image the input shows is decoded.
        pixels, window = _decode_box(
            raw, _source_box(matrix[None], (side, side))[0]
        )
        offset = tf.cast(tf.stack([window[1], window[0]]), tf.float32)
        inverse = get_inverse_affine(matrix) - tf.pad(
            offset[:, None], [[0, 0], [2, 0]]
        )
        image = warp_inverse(pixels, inverse, (side, side))
        return image * self.gain + self.bias
