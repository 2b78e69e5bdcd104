import numpy as np
from keras import ops

from kerapose.api_export import kerapose_export

# `cv2.GaussianBlur(ksize, 0)` takes these binomial kernels, not the sigma
# rule, for sizes up to 7.
_OPENCV_SMALL_KERNELS = {
    3: (0.25, 0.5, 0.25),
    5: (0.0625, 0.25, 0.375, 0.25, 0.0625),
    7: (0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125),
}


@kerapose_export("kerapose.codecs.MSRAHeatmap")
class MSRAHeatmap:
    """Gaussian heatmaps at a fixed stride, decoded by argmax + quarter shift.

    The target encoding and decoding of Xiao et al. (SimpleBaseline) and Sun
    et al. (HRNet): an unnormalised Gaussian of `sigma` heatmap pixels at the
    rounded keypoint location, and at test time the argmax moved a quarter
    pixel towards the higher neighbour. Keypoints are in input-image pixels
    of the network input and map to heatmap pixels by `x / stride`, as the
    official code does (no half-pixel offset).

    With `refinement="dark"` the decode is distribution-aware (Zhang et al.,
    DARK, CVPR 2020): the heatmap is smoothed by a Gaussian (keeping its
    maximum), log-transformed, and the argmax moved by one Newton step of the
    second-order Taylor expansion, kept on the heatmap (a flat or noisy map
    can send that step far off it). `unbiased=True` centres the target
    Gaussian at the exact sub-pixel location (DARK's unbiased encoding).

    With `refinement="second_max"` the decode is the official RSN test's:
    each map, zero-padded by 10 pixels, is blurred by a Gaussian of
    `blur_kernel_size`; the blurred argmax moves a quarter pixel along the
    unit vector toward the blurred map's second maximum, is clipped to the
    heatmap, and maps to input pixels with a half-pixel offset
    (`(x + 0.5) * stride`). Its score is the unblurred value at the
    rounded point, and every keypoint is returned (no zeroing of maps with
    a non-positive maximum).

    Shapes: B batch, K keypoints, (H, W) input, (h, w) heatmap.

    Args:
        input_size: tuple `(H, W)`. Network input size.
        heatmap_size: tuple `(h, w)`. Heatmap size.
        sigma: float. Gaussian standard deviation in heatmap pixels. Defaults
            to `2.0`.
        unbiased: bool. Sub-pixel Gaussian centres in `encode`. Defaults to
            `False` (the HRNet recipe).
        refinement: str. `"quarter"` (default), `"dark"` or
            `"second_max"`.
        blur_kernel_size: int. Odd size of the DARK or second-max blur
            kernel; the kernel is OpenCV's `GaussianBlur(ksize, 0)`
            (binomial up to 7, else sigma by its rule: 2.0 for 11).
            Defaults to `11`.
        flip_shift: bool. In the flip test, shift the mirrored-back
            heatmaps one pixel right before averaging, as the official
            HRNet test does. Defaults to `True`; `False` for checkpoints
            tested without the shift (official and MMPose RSN).
        box_padding: float or `(x, y)`. Context added around a person box
            before it is cropped: a float multiplies both sides (HRNet's
            1.25); a pair multiplies width and height separately before the
            short side grows to the input's aspect ratio (official RSN test:
            `(1.09, 1.135)`). Defaults to `1.25`.
        score_scale, score_offset: floats. Decoded scores are
            `value * score_scale + score_offset`. Defaults `1.0` and `0.0`;
            the official RSN test scores its 0-255 heatmaps with `1 / 255`
            and `0.5`.
    """

    def __init__(
        self,
        input_size=(256, 192),
        heatmap_size=(64, 48),
        sigma=2.0,
        unbiased=False,
        refinement="quarter",
        blur_kernel_size=11,
        flip_shift=True,
        box_padding=1.25,
        score_scale=1.0,
        score_offset=0.0,
    ):
        self.input_size = tuple(int(s) for s in input_size)
        self.heatmap_size = tuple(int(s) for s in heatmap_size)
        if len(self.input_size) != 2 or len(self.heatmap_size) != 2:
            raise ValueError(
                "`input_size` and `heatmap_size` must be (height, width). "
                f"Received: {input_size}, {heatmap_size}"
            )
        if min(self.heatmap_size) <= 0 or sigma <= 0:
            raise ValueError(
                "`heatmap_size` and `sigma` must be positive. "
                f"Received: {heatmap_size}, sigma={sigma}"
            )
        self.sigma = float(sigma)
        if refinement not in ("quarter", "dark", "second_max"):
            raise ValueError(
                "`refinement` must be 'quarter', 'dark' or 'second_max'. "
                f"Received: {refinement!r}"
            )
        if blur_kernel_size % 2 != 1 or blur_kernel_size < 3:
            raise ValueError(
                "`blur_kernel_size` must be an odd int >= 3. "
                f"Received: {blur_kernel_size}"
            )
        self.unbiased = bool(unbiased)
        self.refinement = refinement
        self.blur_kernel_size = int(blur_kernel_size)
        self.flip_shift = bool(flip_shift)
        self.box_padding = _check_box_padding(box_padding)
        self.score_scale = float(score_scale)
        self.score_offset = float(score_offset)

    @property
    def stride(self):
        """(stride_y, stride_x): input pixels per heatmap pixel."""
        return (
            self.input_size[0] / self.heatmap_size[0],
            self.input_size[1] / self.heatmap_size[1],
        )

    def encode(self, keypoints, visible):
        """Encodes one instance in NumPy (reference implementation).

        Args:
            keypoints: (K, 2) array of (x, y) in input pixels.
            visible: (K,) array; > 0 means labelled.

        Returns:
            heatmaps (h, w, K) float32 and keypoint_weights (K,) float32.
            A keypoint whose Gaussian falls entirely outside the heatmap gets
            weight 0.
        """
        keypoints = np.asarray(keypoints, np.float32)
        visible = np.asarray(visible)
        h, w = self.heatmap_size
        k = keypoints.shape[0]
        radius = 3 * self.sigma
        heatmaps = np.zeros((h, w, k), np.float32)
        weights = (visible > 0).astype(np.float32)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        for i in range(k):
            if weights[i] == 0:
                continue
            mu_x = keypoints[i, 0] / self.stride[1]
            mu_y = keypoints[i, 1] / self.stride[0]
            if not self.unbiased:
                mu_x, mu_y = int(mu_x + 0.5), int(mu_y + 0.5)
            if (
                mu_x - radius >= w
                or mu_y - radius >= h
                or mu_x + radius + 1 < 0
                or mu_y + radius + 1 < 0
            ):
                weights[i] = 0
                continue
            inside = (np.abs(xs - mu_x) <= radius) & (
                np.abs(ys - mu_y) <= radius
            )
            g = np.exp(
                -((xs - mu_x) ** 2 + (ys - mu_y) ** 2) / (2 * self.sigma**2)
            )
            heatmaps[..., i] = np.where(inside, g, 0.0)
        return heatmaps, weights

    def decode(self, heatmaps):
        """Decodes heatmaps with `keras.ops` (any backend, in-graph).

        Args:
            heatmaps: (B, h, w, K) tensor.

        Returns:
            keypoints (B, K, 2) as (x, y) in input pixels, and scores (B, K)
            (the heatmap maxima). Keypoints with a non-positive maximum are
            set to (0, 0).
        """
        heatmaps = ops.convert_to_tensor(heatmaps)
        h, w = heatmaps.shape[1], heatmaps.shape[2]
        if h is None or w is None:
            h, w = self.heatmap_size
        k = heatmaps.shape[3]
        flat = ops.reshape(
            ops.transpose(heatmaps, (0, 3, 1, 2)), (-1, k, h * w)
        )
        idx = ops.argmax(flat, axis=-1)
        scores = ops.max(flat, axis=-1)
        if self.refinement == "second_max":
            return self._second_max_decode(heatmaps, flat, h, w, k)
        px = ops.cast(idx % w, "int32")
        py = ops.cast(idx // w, "int32")
        if self.refinement == "dark":
            dx, dy = self._dark_offsets(heatmaps, px, py, h, w, k)
        else:
            dx, dy = self._quarter_offsets(flat, px, py, h, w)
        x = (ops.cast(px, flat.dtype) + dx) * self.stride[1]
        y = (ops.cast(py, flat.dtype) + dy) * self.stride[0]
        found = ops.cast(scores > 0, flat.dtype)
        keypoints = ops.stack([x * found, y * found], axis=-1)
        return keypoints, self._rescale(scores)

    def _rescale(self, scores):
        if self.score_scale == 1.0 and self.score_offset == 0.0:
            return scores
        return scores * self.score_scale + self.score_offset

    def _second_max_decode(self, heatmaps, flat, h, w, k, argmax=None):
        """`argmax(t)`: index of the maximum along the last axis; the
        export graph passes TFLite's builtin one."""
        argmax = argmax or (lambda t: ops.argmax(t, axis=-1))
        border = 10  # the official test's zero frame
        hp, wp = h + 2 * border, w + 2 * border
        column, row = self._blur_kernel(k, "float32")
        padded = ops.pad(
            ops.cast(heatmaps, "float32"),
            ((0, 0), (border, border), (border, border), (0, 0)),
        )
        blurred = ops.depthwise_conv(padded, column, padding="same")
        blurred = ops.depthwise_conv(blurred, row, padding="same")
        blurred = ops.reshape(
            ops.transpose(blurred, (0, 3, 1, 2)), (-1, k, hp * wp)
        )
        first = argmax(blurred)
        # The first maximum is set to zero (not removed), as officially.
        at_first = ops.arange(hp * wp) == ops.expand_dims(first, -1)
        second = argmax(ops.where(at_first, 0.0, blurred))
        x = ops.cast(first % wp - border, "float32")
        y = ops.cast(first // wp - border, "float32")
        dx = ops.cast(second % wp - border, "float32") - x
        dy = ops.cast(second // wp - border, "float32") - y
        length = ops.sqrt(dx * dx + dy * dy)
        far = length > 1e-3
        safe = ops.where(far, length, 1.0)
        x = ops.clip(x + ops.where(far, 0.25 * dx / safe, 0.0), 0.0, w - 1.0)
        y = ops.clip(y + ops.where(far, 0.25 * dy / safe, 0.0), 0.0, h - 1.0)
        j = ops.cast(ops.round(y), "int32") * w + ops.cast(
            ops.round(x), "int32"
        )
        scores = ops.squeeze(
            ops.take_along_axis(flat, ops.expand_dims(j, -1), axis=-1), -1
        )
        dtype = flat.dtype
        keypoints = ops.stack(
            [
                ops.cast((x + 0.5) * self.stride[1], dtype),
                ops.cast((y + 0.5) * self.stride[0], dtype),
            ],
            axis=-1,
        )
        return keypoints, self._rescale(scores)

    @staticmethod
    def _sampler(flat, px, py, h, w):
        """Returns f(dx, dy) = heatmap value at (px + dx, py + dy), clipped."""

        def at(dx, dy):
            j = ops.clip(py + dy, 0, h - 1) * w + ops.clip(px + dx, 0, w - 1)
            j = ops.expand_dims(ops.cast(j, "int32"), -1)
            return ops.squeeze(ops.take_along_axis(flat, j, axis=-1), -1)

        return at

    def _quarter_offsets(self, flat, px, py, h, w):
        at = self._sampler(flat, px, py, h, w)
        interior = ops.cast(
            (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1), flat.dtype
        )
        dx = ops.sign(at(1, 0) - at(-1, 0)) * 0.25 * interior
        dy = ops.sign(at(0, 1) - at(0, -1)) * 0.25 * interior
        return dx, dy

    def _blur_kernel(self, k, dtype):
        size = self.blur_kernel_size
        if size in _OPENCV_SMALL_KERNELS:
            g = np.asarray(_OPENCV_SMALL_KERNELS[size], dtype)
        else:
            sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8  # OpenCV's rule
            r = np.arange(size, dtype=np.float64) - (size - 1) / 2
            g = np.exp(-(r**2) / (2 * sigma**2))
            g = (g / g.sum()).astype(dtype)
        return (
            ops.convert_to_tensor(
                np.tile(g[:, None, None, None], (1, 1, k, 1))
            ),
            ops.convert_to_tensor(
                np.tile(g[None, :, None, None], (1, 1, k, 1))
            ),
        )

    def _dark_offsets(self, heatmaps, px, py, h, w, k):
        # Modulation: Gaussian smoothing with zero borders, rescaled so each
        # map keeps its maximum, then log (DARK).
        dtype = heatmaps.dtype
        column, row = self._blur_kernel(k, "float32")
        blurred = ops.depthwise_conv(
            ops.cast(heatmaps, "float32"), column, padding="same"
        )
        blurred = ops.depthwise_conv(blurred, row, padding="same")
        peak = ops.max(heatmaps, axis=(1, 2), keepdims=True)
        blurred_peak = ops.max(blurred, axis=(1, 2), keepdims=True)
        ratio = ops.where(
            blurred_peak > 0, ops.cast(peak, "float32") / blurred_peak, 0.0
        )
        logs = ops.log(ops.maximum(blurred * ratio, 1e-10))
        flat = ops.reshape(ops.transpose(logs, (0, 3, 1, 2)), (-1, k, h * w))
        f = self._sampler(flat, px, py, h, w)
        c = f(0, 0)
        gx = 0.5 * (f(1, 0) - f(-1, 0))
        gy = 0.5 * (f(0, 1) - f(0, -1))
        hxx = 0.25 * (f(2, 0) - 2 * c + f(-2, 0))
        hyy = 0.25 * (f(0, 2) - 2 * c + f(0, -2))
        hxy = 0.25 * (f(1, 1) - f(1, -1) - f(-1, 1) + f(-1, -1))
        det = hxx * hyy - hxy * hxy
        ok = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2) & (det != 0)
        safe = ops.where(ok, det, 1.0)
        dx = ops.where(ok, -(hyy * gx - hxy * gy) / safe, 0.0)
        dy = ops.where(ok, -(hxx * gy - hxy * gx) / safe, 0.0)
        # Where the map has no clear peak (flat or noisy) the Newton step
        # is unbounded: keep the refined point on the heatmap.
        x, y = ops.cast(px, "float32"), ops.cast(py, "float32")
        dx = ops.clip(x + dx, 0.0, w - 1.0) - x
        dy = ops.clip(y + dy, 0.0, h - 1.0) - y
        return ops.cast(dx, dtype), ops.cast(dy, dtype)

    def get_config(self):
        return {
            "input_size": list(self.input_size),
            "heatmap_size": list(self.heatmap_size),
            "sigma": self.sigma,
            "unbiased": self.unbiased,
            "refinement": self.refinement,
            "blur_kernel_size": self.blur_kernel_size,
            "flip_shift": self.flip_shift,
            "box_padding": (
                list(self.box_padding)
                if isinstance(self.box_padding, tuple)
                else self.box_padding
            ),
            "score_scale": self.score_scale,
            "score_offset": self.score_offset,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_box_padding(padding):
    """A positive float, or a pair of them as a tuple."""
    try:
        values = (
            [float(padding)]
            if np.ndim(padding) == 0
            else [float(v) for v in padding]
        )
    except (TypeError, ValueError):
        values = []
    if len(values) not in (1, 2) or not all(
        np.isfinite(v) and v > 0 for v in values
    ):
        raise ValueError(
            "`box_padding` must be a positive number or a pair (x, y) of "
            f"them, e.g. 1.25 or (1.09, 1.135). Received: {padding!r}"
        )
    return values[0] if np.ndim(padding) == 0 else tuple(values)
