"""Plumbing of the `kerapose` command: output paths and native logs.

Imports no Keras or TensorFlow (the command checks its paths before it
imports them).
"""

import contextlib
import os
import sys
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Containers OpenCV reads; the codec OpenCV writes into each.
VIDEO_FOURCC = {
    ".mp4": "mp4v",
    ".avi": "MJPG",
    ".mov": "mp4v",
    ".mkv": "mp4v",
    ".webm": "VP80",
}
VIDEO_SUFFIXES = tuple(VIDEO_FOURCC)


def check_model_name(name) -> None:
    """Refuses an unknown zoo name (with close matches) before Keras loads.

    Preset directories and other paths are left to `kerapose.zoo.load`.
    """
    name = str(name)
    if Path(name).is_dir() or {"/", "\\"} & set(name):
        return
    from kerapose.zoo import registry

    registry.resolve(name)


def check_output_path(path, suffixes, option) -> Path:
    """Checks a file the command will write, before any slow work.

    The name must end in one of `suffixes`; its folder is created when
    missing and must be writable.

    Args:
        path: the file.
        suffixes: tuple of str. Accepted endings, e.g. `(".tflite",)`.
        option: str. The option that named it, for messages.

    Raises:
        ValueError: unknown ending, a folder, or a folder that cannot be
            created or written.
    """
    path = Path(path).expanduser()
    if not path.name.lower().endswith(tuple(suffixes)):
        raise ValueError(
            f"{option} {path}: unknown file type; the name must end in "
            f"{suffixes[0]}"
            + (f" (or {', '.join(suffixes[1:])})." if suffixes[1:] else ".")
        )
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name.")
    folder = path.parent
    for up in (folder, *folder.parents):
        if up.exists() and not up.is_dir():
            raise ValueError(f"{option} {path}: {up} is a file, not a folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"{option} {path}: cannot create the folder {folder} "
            f"({e.strerror or e})."
        ) from e
    writable = os.access(folder, os.W_OK | os.X_OK)
    if not writable or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{option} {path}: not writable.")
    return path


def check_written(path, what="file") -> Path:
    """Raises a RuntimeError unless `path` now holds a non-empty file."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise RuntimeError(f"Writing the {what} {path} failed.")
    return path


@contextlib.contextmanager
def quiet_native_logs(enabled=True):
    """Keeps native log lines off the terminal.

    TensorFlow's C++ start-up lines, the TFLite converter's and LiteRT's
    logs are written to file descriptor 2 whatever `TF_CPP_MIN_LOG_LEVEL`
    says, so the descriptor is pointed at a temporary file while Python's
    `sys.stderr` keeps the terminal. The log is replayed when the block
    raises.
    """
    if not enabled:
        yield
        return
    import logging
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    sys.stderr.flush()
    saved = os.dup(2)
    stream = sys.stderr
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        if _writes_to_fd2(stream):
            sys.stderr = open(  # noqa: SIM115  (closed below)
                os.dup(saved), "w", buffering=1, errors="backslashreplace"
            )
        try:
            yield
        except BaseException:
            _restore(saved, stream)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        else:
            _restore(saved, stream)


def _writes_to_fd2(stream):
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False  # e.g. a test's capture object


def _restore(saved, stream):
    if sys.stderr is not stream:
        sys.stderr.close()
        sys.stderr = stream
    os.dup2(saved, 2)
    os.close(saved)
