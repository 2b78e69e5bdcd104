"""What a pipeline reads: an image path, an array, a list, a folder, a glob.

Every source becomes a list of `(name, item)` pairs, `item` a path or an
RGB array, in a stable order; nothing is decoded here, so a large folder is
listed at once and read one batch at a time.
"""

import glob
from pathlib import Path

import numpy as np

from kerapose.cli_support import IMAGE_SUFFIXES

_GLOB_CHARS = set("*?[")


def _is_image_file(path):
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _from_path(source):
    text = str(source)
    if _GLOB_CHARS & set(text):
        matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
        images = [p for p in matches if _is_image_file(p)]
        if not images:
            raise FileNotFoundError(
                f"No image files match {text!r} (image extensions: "
                f"{', '.join(IMAGE_SUFFIXES)})."
            )
        return [(str(p), p) for p in images]
    path = Path(source)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if _is_image_file(p))
        if not images:
            raise FileNotFoundError(
                f"The folder {path} holds no image files (extensions: "
                f"{', '.join(IMAGE_SUFFIXES)})."
            )
        return [(str(p), p) for p in images]
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: give an image file, a folder of images, "
            "a glob pattern (e.g. 'photos/*.jpg') or an RGB array."
        )
    # A file with another suffix is still tried: the reader says whether it
    # decodes.
    return [(str(path), path)]


def list_sources(source, bgr=False):
    """`(name, item)` pairs of every image in `source`.

    Args:
        source: path of an image or a folder (its image files, sorted), a
            glob pattern, an (H, W, 3) array, or a list / tuple of these.
        bgr: arrays are BGR (OpenCV's order) and are turned to RGB.

    Returns:
        list of `(name, item)`: `item` a `Path` or an RGB array; arrays are
        named `"array_<i>"` by their position.

    Raises:
        FileNotFoundError: a path that does not exist, an empty folder or a
            pattern without images.
        ValueError: an entry that is neither a path nor an array.
    """
    entries = list(source) if isinstance(source, (list, tuple)) else [source]
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, (str, Path)):
            out += _from_path(entry)
        elif isinstance(entry, np.ndarray):
            if bgr and entry.ndim == 3 and entry.shape[-1] >= 3:
                entry = entry[..., 2::-1]
            out.append((f"array_{i}", entry))
        else:
            raise ValueError(
                f"Entry {i} of the source is a {type(entry).__name__}; give "
                "image paths, folders, glob patterns or (H, W, 3) arrays."
            )
    return out
