"""Videos through a `PosePipeline`: tracked, optionally smoothed, drawn.

Frames are read with OpenCV and run through the pipeline `batch_size` at a
time (crops of all their people in one network call); tracking and
smoothing then go frame by frame, in order.
"""

import sys
import time
from pathlib import Path

import cv2

from kerapose.cli_support import VIDEO_FOURCC
from kerapose.cli_support import VIDEO_SUFFIXES


def open_capture(path):
    """`cv2.VideoCapture` of `path`, or a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Video file not found: {path}")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(
            f"Cannot open video {path}: not a video, or in a codec OpenCV "
            "cannot decode."
        )
    return capture


def open_writer(path, fps, size):
    """`cv2.VideoWriter` for `path` ((width, height) frames), or an error."""
    path = Path(path)
    fourcc = VIDEO_FOURCC.get(path.suffix.lower())
    if fourcc is None:
        raise ValueError(
            f"Cannot write a video as {path.suffix or 'no extension'}: use "
            f"one of {', '.join(VIDEO_SUFFIXES)}."
        )
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size
    )
    if not writer.isOpened():
        raise RuntimeError(
            f"OpenCV cannot write the video {path} ({path.suffix}); try "
            ".mp4 or .avi."
        )
    return writer


class Progress:
    """One status line: frames done, frames per second, time left."""

    def __init__(self, total=None, stream=None, every=0.5):
        self.total = total if total and total > 0 else None
        self.stream = stream or sys.stderr
        self.every = every
        self.start = time.perf_counter()
        self.shown = 0.0

    def update(self, done, final=False):
        now = time.perf_counter()
        if not final and now - self.shown < self.every:
            return
        self.shown = now
        fps = done / max(now - self.start, 1e-9)
        text = f"\r{done}" + (f"/{self.total}" if self.total else "")
        text += f" frames, {fps:.1f} frames/s"
        if self.total and fps > 0 and not final:
            left = max(self.total - done, 0) / fps
            text += f", {int(left // 60)}:{int(left % 60):02d} left"
        self.stream.write(text + ("\n" if final else ""))
        self.stream.flush()


def predict_video(
    pipeline,
    path,
    out=None,
    tracker=None,
    smoother=None,
    threshold=0.3,
    progress=True,
):
    """People in every frame of a video, tracked (and smoothed).

    Args:
        pipeline: `PosePipeline`.
        path: the video file.
        out: where to write the drawn video (`None`: not drawn).
        tracker: `PoseTracker` giving track ids, or `None` (no ids).
        smoother: `KeypointSmoother` (needs a tracker), or `None`.
        threshold: keypoint score under which a joint is not drawn.
        progress: show frames done, frames per second and time left.

    Returns:
        list of `PoseResult`, one per frame.

    Raises:
        FileNotFoundError, ValueError: a missing or unreadable video, a
            smoother without a tracker, a video without frames.
    """
    if smoother is not None and tracker is None:
        raise ValueError(
            "Smoothing follows people by track id: pass a `tracker` too."
        )
    capture = open_capture(path)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    bar = Progress(total) if progress else None
    writer, results = None, []
    try:
        done = False
        while not done:
            frames = []
            while len(frames) < pipeline.batch_size:
                ok, bgr = capture.read()
                if not ok:
                    done = True
                    break
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            if not frames:
                break
            names = [f"frame_{len(results) + i}" for i in range(len(frames))]
            for rgb, result in zip(frames, pipeline.predict(frames, names)):
                if tracker is not None:
                    result = tracker.update(result)
                if smoother is not None:
                    result = smoother.update(result, len(results) / fps)
                results.append(result)
                if out is not None:
                    if writer is None:
                        h, w = rgb.shape[:2]
                        writer = open_writer(out, fps, (w, h))
                    drawn = result.plot(rgb, threshold=threshold)
                    writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            if bar is not None:
                bar.update(len(results))
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if bar is not None:
        bar.update(len(results), final=True)
    if not results:
        raise ValueError(
            f"Read no frames from {path}: the file is empty or in a codec "
            "OpenCV cannot decode."
        )
    return results
