"""Early, explicit checks on image batches fed to kerapose models.

Keras functional models silently cast integer inputs and only warn about
shape mismatches; a pose model fed a uint8 or 1-channel image would then fail
deep inside a conv or give garbage, so the checks run before the graph.
"""

import keras

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def check_image_batch(images, owner, channels=3, divisor=1, size=None):
    """Raises a clear error if `images` is not a float (B, H, W, C) batch.

    Args:
        images: array or tensor (symbolic tensors included).
        owner: str. Model name used in messages.
        channels: int. Expected channel count. Defaults to `3`.
        divisor: int. H and W must be multiples of it (when known).
        size: `(H, W)` the model was built for, `None` entries (or `None`)
            for any size. Defaults to `None`.
    """
    if isinstance(images, dict):
        if "images" not in images:
            raise ValueError(
                f"{owner} expects an image batch or a dict with an 'images' "
                f"key. Received a dict with keys {sorted(images)}."
            )
        images = images["images"]
    shape = getattr(images, "shape", None)
    if shape is None:
        raise TypeError(
            f"{owner} expects a float image batch of shape (B, H, W, "
            f"{channels}). Received an object of type {type(images)}."
        )
    shape = tuple(shape)
    if len(shape) != 4:
        hint = (
            " Add a batch axis, e.g. `images[None]`." if len(shape) == 3 else ""
        )
        raise ValueError(
            f"{owner} expects a rank-4 image batch (B, H, W, {channels}). "
            f"Received shape {shape}.{hint}"
        )
    if shape[-1] is not None and shape[-1] != channels:
        raise ValueError(
            f"{owner} expects {channels}-channel images (B, H, W, "
            f"{channels}), channels last. Received shape {shape}. Convert "
            "grey or RGBA images to RGB first."
        )
    dtype = keras.backend.standardize_dtype(images.dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{owner} expects float images, normalised as its family does "
            "(ImageNet mean and std for HRNet, OmniPose, RSN and "
            "HigherHRNet; 0-1 for YOLO-Pose and the AE hourglass). Received "
            f"dtype {dtype}. Use `kerapose.inference.predict_image`, which "
            "does this for you."
        )
    if size is not None:
        _check_size(shape, tuple(size), owner, channels)
    for axis, name in ((1, "height"), (2, "width")):
        size = shape[axis]
        if size is not None and divisor > 1 and size % divisor:
            raise ValueError(
                f"{owner} needs the image {name} to be a multiple of "
                f"{divisor}; received shape {shape}. Resize or pad the "
                f"input to multiples of {divisor}."
            )


def _check_size(shape, size, owner, channels):
    # Functional models have a fixed input size; another size fails deep
    # in the graph (a reshape in the decoder) or, on JAX, inside predict.
    for got, want in zip(shape[1:3], size):
        if got is not None and want is not None and got != want:
            h, w = size
            raise ValueError(
                f"{owner} was built for {h}x{w} (H x W) inputs: expected "
                f"shape (B, {h}, {w}, {channels}), received {shape}. Crop "
                f"and resize to {h}x{w} (`kerapose.inference.predict_image` "
                "does it from person boxes), or build the model for this "
                "size: `kerapose.zoo.load(name, input_shape=(H, W, 3))`."
            )
