"""Calibration images for full-integer quantization.

The int8 converter measures the range of every tensor on these images, so
they must look like what the model sees in use: normalised person crops of
the model's input size. They come from the user's data (a ``tf.data``
pipeline or an array) or, by default, from the synthetic set.
"""

from __future__ import annotations

import tempfile

import numpy as np
import tensorflow as tf


def calibration_images(
    data, input_shape: tuple, num_samples: int = 64
) -> np.ndarray:
    """(N, H, W, 3) float32 crops taken from `data`.

    Args:
        data: a `tf.data.Dataset` (elements `images` or tuples starting with
            `images`, batched or not, e.g. `build_top_down_dataset(...)`), a
            NumPy array (N, H, W, 3) or (H, W, 3), or `None` for synthetic
            crops.
        input_shape: `(H, W, 3)` the exported model takes.
        num_samples: int. Most images to take.

    Raises:
        ValueError: the images do not have shape `input_shape`, are not
            float (raw uint8 pixels are refused, as the models refuse
            them), or there are none.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if data is None:
        images = synthetic_crops(input_shape[:2], num_samples)
    elif isinstance(data, tf.data.Dataset):
        images = _from_dataset(data, num_samples)
    else:
        images = _float_images(np.asarray(data))
        if images.ndim == len(input_shape):
            images = images[None]
    if images.ndim != 4 or tuple(images.shape[1:]) != input_shape:
        raise ValueError(
            "The representative data must be images of the model's input "
            f"shape {input_shape} (batched or not). Received images of "
            f"shape {tuple(images.shape)}. Build it with the model's codec "
            "(`build_top_down_dataset(..., codec=model.codec)`)."
        )
    if len(images) == 0:
        raise ValueError("The representative data holds no images.")
    return images[:num_samples]


def _float_images(images):
    """float32 images; integer pixels are an error, not a silent cast."""
    if images.dtype.kind != "f":
        raise ValueError(
            "The representative data must be float crops normalised like "
            "the training data (ImageNet mean and std), as the models take. "
            f"Received dtype {images.dtype}. Use `build_top_down_dataset("
            "..., training=False)` or `kerapose.data.transforms."
            "normalize_image`."
        )
    return images.astype(np.float32)


def _from_dataset(dataset, num_samples):
    taken, count = [], 0
    for element in dataset:
        x = element[0] if isinstance(element, (tuple, list)) else element
        if isinstance(x, dict):
            x = x.get("images", next(iter(x.values())))
        x = _float_images(np.asarray(x))
        if x.ndim == 3:
            x = x[None]
        taken.append(x)
        count += len(x)
        if count >= num_samples:
            break
    if not taken:
        raise ValueError("The representative dataset is empty.")
    shapes = {t.shape[1:] for t in taken}
    if len(shapes) > 1:
        raise ValueError(
            f"The representative dataset yields images of several shapes: "
            f"{sorted(shapes)}."
        )
    return np.concatenate(taken)


def synthetic_crops(
    input_size: tuple, num_samples: int = 64, seed: int = 0
) -> np.ndarray:
    """Normalised person crops of the synthetic set (evaluation crops)."""
    from kerapose.codecs.msra_heatmap import MSRAHeatmap
    from kerapose.data.pipelines import build_top_down_dataset
    from kerapose.data.synthetic import write_synthetic_coco

    h, w = (int(s) for s in input_size)
    codec = MSRAHeatmap(input_size=(h, w), heatmap_size=(h // 4, w // 4))
    with tempfile.TemporaryDirectory() as tmp:
        # About 1.6 people per image; every eighth image is empty.
        ann = write_synthetic_coco(
            tmp, num_images=max(4, num_samples), seed=seed, split="calib"
        )
        dataset = build_top_down_dataset(
            ann,
            f"{tmp}/images",
            codec,
            batch_size=16,
            training=False,
            verbose=False,
        )
        return _from_dataset(dataset.map(lambda x, *_: x), num_samples)
