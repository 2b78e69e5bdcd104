"""Smoothing tracked keypoints over time with the One-Euro filter.

The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a low-pass
filter whose cutoff rises with the speed of the signal: slow movements are
smoothed hard (less jitter), fast ones lightly (less lag). NumPy only.
"""

import dataclasses
import math

import numpy as np


def _positive(name, value):
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(
            f"`{name}` must be a positive number. Received: {value!r}"
        )
    return value


def _next_time(last, timestamp, fps):
    """The time of the next frame: `timestamp`, or `1 / fps` after `last`."""
    if timestamp is None:
        return 0.0 if last is None else last + 1.0 / fps
    now = float(timestamp)
    if not math.isfinite(now) or (last is not None and now <= last):
        raise ValueError(
            "`timestamp` must be finite and increase from frame to frame "
            f"(last {last}). Received: {timestamp!r}"
        )
    return now


def _alpha(period, cutoff):
    """Exponential smoothing factor of a first-order low-pass filter."""
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / period)


class OneEuroFilter:
    """One-Euro filter over an array of values, each filtered on its own.

    At each step of period `Te` (seconds), with `x_hat` the previous
    output and `alpha(c) = 1 / (1 + tau / Te)`, `tau = 1 / (2 pi c)`:

    - derivative: `dx_hat = alpha(d_cutoff) * (x - x_hat) / Te
      + (1 - alpha(d_cutoff)) * dx_hat`;
    - cutoff: `c = min_cutoff + beta * |dx_hat|`;
    - output: `x_hat = alpha(c) * x + (1 - alpha(c)) * x_hat`.

    The first value of each entry passes through unchanged (derivative 0).
    Entries marked invalid are held: their state and time stamp are left
    as they were, so a keypoint seen again after a gap is filtered with
    the whole gap as its period (it catches up at once after a long gap).

    Args:
        min_cutoff: float > 0. Cutoff frequency (Hz) when still: lower
            means less jitter and more lag. Defaults to 1.0.
        beta: float >= 0. How fast the cutoff rises with speed (per unit
            of the values per second): higher means less lag on fast
            moves. Defaults to 0.0.
        d_cutoff: float > 0. Cutoff frequency (Hz) of the derivative.
            Defaults to 1.0.
        fps: float > 0. Frame rate used when no timestamp is given.
            Defaults to 30.0.
    """

    def __init__(self, min_cutoff=1.0, beta=0.0, d_cutoff=1.0, fps=30.0):
        self.min_cutoff = _positive("min_cutoff", min_cutoff)
        beta = float(beta)
        if not beta >= 0 or not math.isfinite(beta):
            raise ValueError(
                f"`beta` must be a non-negative number. Received: {beta!r}"
            )
        self.beta = beta
        self.d_cutoff = _positive("d_cutoff", d_cutoff)
        self.fps = _positive("fps", fps)
        self.reset()

    def reset(self):
        """Forgets the state: the next value passes through unchanged."""
        self._x = None  # last output
        self._dx = None  # last filtered derivative
        self._t = None  # per entry: time of its last valid value
        self._now = None  # time of the last call

    def __call__(self, x, timestamp=None, valid=None):
        """Filters the next value.

        Args:
            x: array of values, e.g. (K, 2) keypoints; the same shape at
                every call.
            timestamp: float. Time of `x` in seconds, increasing from call
                to call; None steps by `1 / fps`. Defaults to None.
            valid: optional bool array of `x`'s shape, or of `x`'s shape
                without its last axis (one flag per (x, y) point). Invalid
                entries do not update the state; their output is the raw
                input. Defaults to None (all valid).

        Returns:
            float64 array of `x`'s shape, the filtered values.
        """
        x = np.asarray(x, np.float64)
        if self._x is not None and x.shape != self._x.shape:
            raise ValueError(
                f"`x` must keep its shape {self._x.shape} between calls "
                f"(call `reset()` to start over). Received: {x.shape}"
            )
        valid = self._valid_mask(valid, x.shape)
        if not np.all(np.isfinite(x[valid])):
            raise ValueError("`x` has NaN or infinite values where valid.")
        now = self._now = _next_time(self._now, timestamp, self.fps)
        if self._x is None:
            self._x = np.where(valid, x, 0.0)
            self._dx = np.zeros_like(x)
            self._t = np.where(valid, now, np.nan)
            return x.copy()

        fresh = valid & np.isnan(self._t)  # first valid value of an entry
        update = valid & ~fresh
        period = np.where(update, now - np.nan_to_num(self._t), 1.0)
        a_d = _alpha(period, self.d_cutoff)
        dx = a_d * (x - self._x) / period + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(dx)
        a = _alpha(period, cutoff)
        x_hat = a * x + (1.0 - a) * self._x

        self._x = np.where(update, x_hat, np.where(fresh, x, self._x))
        self._dx = np.where(update, dx, self._dx)
        self._t = np.where(valid, now, self._t)
        return np.where(update, x_hat, x)

    def _valid_mask(self, valid, shape):
        if valid is None:
            return np.ones(shape, bool)
        valid = np.asarray(valid, bool)
        if valid.shape == shape[:-1]:
            valid = valid[..., None]
        elif valid.shape != shape:
            raise ValueError(
                f"`valid` must have shape {shape} or {shape[:-1]}. "
                f"Received: {valid.shape}"
            )
        return np.broadcast_to(valid, shape)


class KeypointSmoother:
    """Smooths the keypoints of tracked people with one filter per track.

    Feed it the output of `PoseTracker.update`, frame by frame. A joint
    whose score is at or below `score_threshold` does not update its
    filter (an occluded joint's guess would drag the smoothed position)
    and is returned as predicted; the filter resumes when the joint is
    seen again. Filters of tracks absent for more than `max_age` frames
    are dropped.

    Args:
        min_cutoff: float > 0. See `OneEuroFilter`; in Hz. Defaults to 1.0.
        beta: float >= 0. See `OneEuroFilter`; per pixel per second.
            Defaults to 0.0.
        d_cutoff: float > 0. See `OneEuroFilter`. Defaults to 1.0.
        fps: float > 0. Frame rate when `update` gets no timestamp.
            Defaults to 30.0.
        score_threshold: float or None. Joints at or below it are held;
            None filters every joint. Defaults to 0.3 (the drawing
            threshold of `PoseResult.plot`).
        max_age: int >= 0. Frames a track may be absent and keep its
            filter. Defaults to 30, as `PoseTracker`.
    """

    def __init__(
        self,
        min_cutoff=1.0,
        beta=0.0,
        d_cutoff=1.0,
        fps=30.0,
        score_threshold=0.3,
        max_age=30,
    ):
        # Checks the arguments once, here, not at the first new track.
        OneEuroFilter(min_cutoff, beta, d_cutoff, fps)
        if int(max_age) != max_age or max_age < 0:
            raise ValueError(
                "`max_age` must be a non-negative integer (frames). "
                f"Received: {max_age!r}"
            )
        self._settings = dict(
            min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff, fps=fps
        )
        self.fps = float(fps)
        self.score_threshold = score_threshold
        self.max_age = int(max_age)
        self.reset()

    def reset(self):
        """Drops every filter."""
        self._filters = {}  # track id -> OneEuroFilter
        self._missed = {}  # track id -> frames absent
        self._now = None

    @property
    def track_ids(self):
        """Ids of the tracks that have a filter, sorted."""
        return sorted(self._filters)

    def update(self, result, timestamp=None):
        """Smooths one frame's keypoints.

        Args:
            result: `PoseResult` with `track_ids` set (by `PoseTracker`).
            timestamp: float. Time of the frame in seconds, increasing;
                None steps by `1 / fps`. Defaults to None.

        Returns:
            A copy of `result` with smoothed `keypoints` (same dtype).
        """
        if result.track_ids is None:
            raise ValueError(
                "`result.track_ids` is None: run `PoseTracker.update` on "
                "the result before smoothing it."
            )
        ids = np.asarray(result.track_ids).reshape(-1)
        keypoints = np.asarray(result.keypoints)
        if len(ids) != len(keypoints) or len(set(ids.tolist())) != len(ids):
            raise ValueError(
                "`result.track_ids` must hold one distinct id per person "
                f"({len(keypoints)}). Received: {ids.tolist()}"
            )
        now = self._now = _next_time(self._now, timestamp, self.fps)
        smoothed = keypoints.astype(np.float64, copy=True)
        for n, track_id in enumerate(ids.tolist()):
            valid = None
            if self.score_threshold is not None:
                valid = result.keypoint_scores[n] > self.score_threshold
            one_euro = self._filters.get(track_id)
            if one_euro is None:
                one_euro = OneEuroFilter(**self._settings)
                self._filters[track_id] = one_euro
            smoothed[n] = one_euro(keypoints[n], now, valid)
        self._forget_absent(set(ids.tolist()))
        dtype = keypoints.dtype if keypoints.dtype.kind == "f" else np.float32
        return dataclasses.replace(result, keypoints=smoothed.astype(dtype))

    def _forget_absent(self, present):
        for track_id in list(self._filters):
            if track_id in present:
                self._missed[track_id] = 0
                continue
            self._missed[track_id] = self._missed.get(track_id, 0) + 1
            if self._missed[track_id] > self.max_age:
                del self._filters[track_id]
                del self._missed[track_id]
