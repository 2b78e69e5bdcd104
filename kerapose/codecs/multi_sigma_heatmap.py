import numpy as np

from kerapose.api_export import kerapose_export
from kerapose.codecs.msra_heatmap import MSRAHeatmap


def opencv_kernel_sigma(kernel_size):
    """Sigma OpenCV's `GaussianBlur(ksize, 0)` derives from the kernel size."""
    return 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8


# The official RSN recipe blurs each keypoint with Gaussian kernels of 15,
# 11, 9, 7 and 5 pixels (coarse to fine): sigmas 2.6, 2.0, 1.7, 1.4, 1.1.
RSN_SIGMAS = tuple(round(opencv_kernel_sigma(k), 6) for k in (15, 11, 9, 7, 5))


@kerapose_export("kerapose.codecs.MultiSigmaHeatmap")
class MultiSigmaHeatmap(MSRAHeatmap):
    """Gaussian heatmap targets at several sizes, for intermediate supervision.

    Encodes the same keypoints T times, once per sigma (coarse to fine), so
    that a multi-stage network can train its coarser units on wider
    Gaussians, as the RSN recipe does. Decoding is `MSRAHeatmap`'s and uses
    the finest sigma (`self.sigma = sigmas[-1]`), as do the keypoint
    weights.

    Shapes: K keypoints, (h, w) heatmap, T = `len(sigmas)`.

    Args:
        input_size: tuple `(H, W)`. Network input size.
        heatmap_size: tuple `(h, w)`. Heatmap size.
        sigmas: tuple of floats, coarse to fine. Defaults to RSN's
            `(2.6, 2.0, 1.7, 1.4, 1.1)` (its 15/11/9/7/5-pixel kernels).
        **kwargs: other `MSRAHeatmap` arguments (`unbiased`, `refinement`,
            `blur_kernel_size`, `flip_shift`).
    """

    def __init__(
        self,
        input_size=(256, 192),
        heatmap_size=(64, 48),
        sigmas=RSN_SIGMAS,
        **kwargs,
    ):
        kwargs.pop("sigma", None)
        sigmas = tuple(float(s) for s in sigmas)
        if not sigmas or min(sigmas) <= 0:
            raise ValueError(
                f"`sigmas` must be positive floats. Received: {sigmas}"
            )
        super().__init__(input_size, heatmap_size, sigma=sigmas[-1], **kwargs)
        self.sigmas = sigmas

    def single_sigma(self, sigma):
        """The `MSRAHeatmap` of one of the sizes."""
        config = MSRAHeatmap.get_config(self)
        config["sigma"] = sigma
        return MSRAHeatmap(**config)

    def encode(self, keypoints, visible):
        """Encodes one instance in NumPy (reference implementation).

        Returns:
            heatmaps (T, h, w, K) float32 and keypoint_weights (K,) of the
            finest sigma.
        """
        maps = [
            self.single_sigma(s).encode(keypoints, visible)[0]
            for s in self.sigmas
        ]
        _, weights = super().encode(keypoints, visible)
        return np.stack(maps, axis=0), weights

    def get_config(self):
        config = super().get_config()
        config.pop("sigma")
        config["sigmas"] = list(self.sigmas)
        return config
