"""In-graph part of the Associative Embedding decoding (bottom-up models).

Aggregates the output maps of a bottom-up network the way the official
HigherHRNet test does (flip average, resize to a common size, multi-scale
average), suppresses non-maxima by max-pooling and keeps the top k
candidates of every joint. Grouping the candidates into people runs on the
host (`kerapose.inference.grouping`).

Shapes: B batch, K keypoints, (h, w) a map, L tag values per candidate
(tag_dim per tag output, times 2 with the flip test), k candidates.
"""

import keras
from keras import ops

from kerapose.api_export import kerapose_export


def _int_tuple(values, name):
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"`{name}` must be a list of output indices. Received: {values!r}"
        ) from err
    if not out or min(out) < 0 or len(set(out)) != len(out):
        raise ValueError(
            f"`{name}` must list distinct non-negative output indices, at "
            f"least one. Received: {values!r}"
        )
    return out


def _upsample_1d(x, axis, factor):
    """Bilinear x `factor` (an int) along `axis`, half-pixel centres.

    Output pixel `factor * i + p` lies at `i + d_p` in the input, `d_p =
    (p + 0.5) / factor - 0.5`, so every phase p is a fixed blend of a pixel
    and one neighbour (edges repeated, as the clamped general formula).
    """
    n = x.shape[axis]

    def part(t, start, stop):
        window = [slice(None)] * len(t.shape)
        window[axis] = slice(start, stop)
        return t[tuple(window)]

    padded = ops.concatenate([part(x, 0, 1), x, part(x, n - 1, n)], axis=axis)

    def shifted(offset):
        return part(padded, offset, offset + n)

    prev, nxt = shifted(0), shifted(2)
    phases = []
    for p in range(factor):
        d = (p + 0.5) / factor - 0.5
        phases.append(x * (1.0 - abs(d)) + (nxt if d >= 0 else prev) * abs(d))
    out = ops.stack(phases, axis=axis + 1)
    shape = list(ops.shape(x))
    shape[axis] = n * factor
    return ops.reshape(out, shape)


def _resize(x, size):
    """Bilinear resize of (B, h, w, C), half-pixel centres (PyTorch's
    align_corners=False). Integer upscales, the usual case (1/4 and 1/2
    maps to the input size), are blends of shifted maps: on JAX 4x faster
    than the general resize, which stays for any other size."""
    x = ops.convert_to_tensor(x)
    h, w = x.shape[1], x.shape[2]
    size = tuple(int(s) for s in size)
    if (h, w) == size:
        return x
    if h and w and size[0] % h == 0 and size[1] % w == 0:
        if size[0] > h:
            x = _upsample_1d(x, 1, size[0] // h)
        if size[1] > w:
            x = _upsample_1d(x, 2, size[1] // w)
        return x
    return ops.image.resize(x, size, interpolation="bilinear")


def _max_1d(x, axis, size):
    """Maximum over a centred window of `size` along `axis`, -inf padded."""
    n = x.shape[axis]
    pad = [(0, 0)] * len(x.shape)
    pad[axis] = (size // 2, size // 2)
    x = ops.pad(x, pad, constant_values=float("-inf"))
    out = None
    for start in range(size):
        window = [slice(None)] * len(x.shape)
        window[axis] = slice(start, start + n)
        out = (
            x[tuple(window)]
            if out is None
            else ops.maximum(out, x[tuple(window)])
        )
    return out


def max_filter(x, size):
    """`size` x `size` max-pool, stride 1, same padding, of (B, h, w, C).

    A square window's maximum is the maximum of its rows' maxima, so two
    1-D pools give the same numbers as one 2-D pool at a fraction of the
    cost on large maps (512x512x17: 45 -> 20 ms on JAX). PyTorch's CPU
    pooling is slow at stride 1 even then (140 ms), so there the window
    is taken as shifted slices (21 ms).
    """
    if keras.backend.backend() == "torch":
        return _max_1d(_max_1d(x, 1, size), 2, size)
    x = ops.max_pool(x, (size, 1), strides=1, padding="same")
    return ops.max_pool(x, (1, size), strides=1, padding="same")


@kerapose_export("kerapose.codecs.AssociativeEmbeddingDecoder")
class AssociativeEmbeddingDecoder:
    """Aggregation, heatmap NMS and top-k candidates of bottom-up outputs.

    The official test (HigherHRNet `get_multi_stage_outputs`,
    `aggregate_results` and `HeatmapParser.top_k`):

    * Every used output is resized (bilinear, half-pixel centres) to the
      size of the last output; the heatmaps of `heatmap_outputs` are
      averaged, the tags of `tag_outputs` kept side by side.
    * Flip test: the outputs of the mirrored image are mirrored back, their
      heatmap and tag channels swapped left/right (`flip_indices`); the
      heatmaps are averaged with the unflipped ones, the tags appended
      (L doubles).
    * `project_size`: heatmaps and tags are resized to it (the official
      `PROJECT2IMAGE`: the network input size at scale 1).
    * Multi-scale: heatmaps averaged over scales (resized to the first
      scale's maps when not projected), tags taken at scale 1 only.
    * NMS: a candidate is a pixel equal to the maximum of its
      `nms_kernel` x `nms_kernel` window; the `max_people` largest of each
      joint are kept.

    Output maps are NHWC: heatmaps in channels `0..K-1`, tags (one per
    joint and tag dimension) in `K..K + K * tag_dim - 1` of the outputs
    that have tags; further channels are ignored.

    Args:
        num_keypoints: int. K. Defaults to `17`.
        heatmap_outputs: indices of the outputs whose heatmaps are averaged
            at test time. Defaults to `(0, 1)` (HigherHRNet).
        tag_outputs: indices of the outputs whose tags are used. Defaults to
            `(0,)`.
        tag_dim: int. Tag values per joint in a tag output. Defaults to `1`.
        flip_indices: left/right keypoint permutation for the flip test, or
            `None` when no flip test is run.
        max_people: int. Candidates kept per joint (the official top k,
            `MAX_NUM_PEOPLE`). Defaults to `30`.
        nms_kernel: int. Odd max-pool window of the NMS. Defaults to `5`
            (HigherHRNet; the AE hourglass code uses 3).
        max_heatmap_value: float or `None`. Clip the aggregated heatmaps to
            it (the AE code clips at 1). Defaults to `None`.
    """

    def __init__(
        self,
        num_keypoints=17,
        heatmap_outputs=(0, 1),
        tag_outputs=(0,),
        tag_dim=1,
        flip_indices=None,
        max_people=30,
        nms_kernel=5,
        max_heatmap_value=None,
    ):
        if isinstance(num_keypoints, bool) or int(num_keypoints) <= 0:
            raise ValueError(
                "`num_keypoints` must be a positive int. "
                f"Received: {num_keypoints!r}"
            )
        self.num_keypoints = int(num_keypoints)
        self.heatmap_outputs = _int_tuple(heatmap_outputs, "heatmap_outputs")
        self.tag_outputs = _int_tuple(tag_outputs, "tag_outputs")
        if int(tag_dim) <= 0:
            raise ValueError(f"`tag_dim` must be >= 1. Received: {tag_dim!r}")
        self.tag_dim = int(tag_dim)
        if flip_indices is not None:
            flip_indices = [int(i) for i in flip_indices]
            if sorted(flip_indices) != list(range(self.num_keypoints)):
                raise ValueError(
                    "`flip_indices` must be a permutation of "
                    f"0..{self.num_keypoints - 1} (the keypoint spec's "
                    f"`flip_indices`). Received: {flip_indices!r}"
                )
        self.flip_indices = flip_indices
        if int(max_people) <= 0:
            raise ValueError(
                f"`max_people` must be >= 1. Received: {max_people!r}"
            )
        self.max_people = int(max_people)
        if int(nms_kernel) <= 0 or int(nms_kernel) % 2 != 1:
            raise ValueError(
                f"`nms_kernel` must be an odd int. Received: {nms_kernel!r}"
            )
        self.nms_kernel = int(nms_kernel)
        self.max_heatmap_value = (
            None if max_heatmap_value is None else float(max_heatmap_value)
        )

    # --------------------------------------------------------- aggregation

    def _check_outputs(self, outputs, name):
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        needed = max(self.heatmap_outputs + self.tag_outputs) + 1
        if len(outputs) < needed:
            raise ValueError(
                f"`{name}` has {len(outputs)} output maps; the decoder uses "
                f"output {needed - 1} (heatmap_outputs="
                f"{self.heatmap_outputs}, tag_outputs={self.tag_outputs})."
            )
        k = self.num_keypoints
        for i, out in enumerate(outputs):
            if i not in self.heatmap_outputs + self.tag_outputs:
                continue
            want = k + k * self.tag_dim if i in self.tag_outputs else k
            if len(out.shape) != 4 or out.shape[-1] < want:
                raise ValueError(
                    f"`{name}[{i}]` must be (B, h, w, C) with C >= {want} "
                    f"({k} heatmaps"
                    + (f" + {k * self.tag_dim} tags" if want > k else "")
                    + f"). Received shape {tuple(out.shape)}."
                )
        return [ops.convert_to_tensor(o) for o in outputs]

    def _split(self, outputs, flipped):
        """Heatmap average (B, h, w, K) and tags [(B, h, w, K, tag_dim)]."""
        k = self.num_keypoints
        size = tuple(outputs[-1].shape[1:3])
        heatmaps = 0.0
        tags = []
        for i, out in enumerate(outputs):
            used = i in self.heatmap_outputs or i in self.tag_outputs
            if not used:
                continue
            out = _resize(out, size)
            if flipped:
                out = ops.flip(out, axis=2)
            if i in self.heatmap_outputs:
                hm = out[..., :k]
                if flipped:
                    hm = ops.take(hm, self.flip_indices, axis=-1)
                heatmaps = heatmaps + hm
            if i in self.tag_outputs:
                tag = out[..., k : k + k * self.tag_dim]
                shape = ops.shape(tag)
                tag = ops.reshape(
                    tag, (shape[0], shape[1], shape[2], k, self.tag_dim)
                )
                if flipped:
                    tag = ops.take(tag, self.flip_indices, axis=3)
                tags.append(tag)
        return heatmaps / len(self.heatmap_outputs), tags

    def aggregate(self, outputs, flipped_outputs=None, project_size=None):
        """Heatmaps and tags of one scale.

        Args:
            outputs: list of (B, h_i, w_i, C_i) output maps of the images.
            flipped_outputs: the outputs of the mirrored images as the
                network returned them, or `None` (no flip test).
            project_size: `(H, W)` to resize the results to (the official
                `PROJECT2IMAGE`), or `None` to keep the last output's size.

        Returns:
            heatmaps (B, h, w, K) and tags (B, h, w, K, L).
        """
        outputs = self._check_outputs(outputs, "outputs")
        heatmaps, tags = self._split(outputs, flipped=False)
        if flipped_outputs is not None:
            if self.flip_indices is None:
                raise ValueError(
                    "The flip test needs `flip_indices` (the keypoint spec's "
                    "left/right permutation); the decoder has none."
                )
            flipped_outputs = self._check_outputs(
                flipped_outputs, "flipped_outputs"
            )
            if tuple(flipped_outputs[-1].shape[1:3]) != tuple(
                outputs[-1].shape[1:3]
            ):
                raise ValueError(
                    "`flipped_outputs` must have the shapes of `outputs`. "
                    f"Received {tuple(flipped_outputs[-1].shape)} and "
                    f"{tuple(outputs[-1].shape)}."
                )
            flip_heatmaps, flip_tags = self._split(
                flipped_outputs, flipped=True
            )
            heatmaps = (heatmaps + flip_heatmaps) * 0.5
            tags = tags + flip_tags
        tags = ops.concatenate(tags, axis=-1)
        if project_size is not None:
            heatmaps, tags = self.resize(heatmaps, tags, project_size)
        return heatmaps, tags

    @staticmethod
    def resize(heatmaps, tags, size):
        """Resizes heatmaps (B, h, w, K) and tags (B, h, w, K, L)."""
        size = tuple(int(s) for s in size)
        heatmaps = _resize(heatmaps, size)
        tags = ops.convert_to_tensor(tags)
        shape = ops.shape(tags)
        flat = ops.reshape(
            tags, (shape[0], shape[1], shape[2], shape[3] * shape[4])
        )
        flat = _resize(flat, size)
        tags = ops.reshape(flat, (shape[0], size[0], size[1]) + shape[3:])
        return heatmaps, tags

    def merge_scales(self, per_scale, scales, projected):
        """The official multi-scale aggregation.

        Args:
            per_scale: list of `(heatmaps, tags)` from `aggregate`, one per
                scale, in the order of `scales`.
            scales: the scale factors, largest first (the official order).
            projected: whether `aggregate` projected every scale to one
                size (`PROJECT2IMAGE`); if not, the maps are resized to the
                first scale's size.

        Returns:
            heatmaps (B, h, w, K) averaged over scales, and tags
            (B, h, w, K, L) of scale 1 (of the only scale if there is one).
        """
        scales = [float(s) for s in scales]
        if len(per_scale) != len(scales):
            raise ValueError(
                f"Got {len(per_scale)} scale results for scales {scales}."
            )
        if len(scales) > 1 and 1.0 not in scales:
            raise ValueError(
                "Multi-scale testing takes the tags at scale 1, as the "
                f"official test does: add 1 to `scales`. Received: {scales}"
            )
        size = tuple(per_scale[0][0].shape[1:3])
        heatmaps = 0.0
        tags = None
        for s, (hm, tg) in zip(scales, per_scale):
            hm, tg = ops.convert_to_tensor(hm), ops.convert_to_tensor(tg)
            if not projected:
                hm, tg = self.resize(hm, tg, size)
            heatmaps = heatmaps + hm
            if s == 1.0 or len(scales) == 1:
                tags = tg
        return heatmaps / len(scales), tags

    # --------------------------------------------------------- candidates

    def top_k(self, heatmaps, tags):
        """Max-pool NMS and the `max_people` best candidates per joint.

        Args:
            heatmaps: (B, h, w, K) aggregated heatmaps.
            tags: (B, h, w, K, L) aggregated tags.

        Returns:
            dict: `values` (B, K, k) heatmap values (sorted, descending),
            `tags` (B, K, k, L), `locations` (B, K, k, 2) int32 `(x, y)`
            map pixels; k = min(max_people, h * w).
        """
        heatmaps = ops.convert_to_tensor(heatmaps)
        tags = ops.convert_to_tensor(tags)
        if self.max_heatmap_value is not None:
            heatmaps = ops.minimum(heatmaps, self.max_heatmap_value)
        h, w, k = heatmaps.shape[1], heatmaps.shape[2], heatmaps.shape[3]
        if h is None or w is None:
            raise ValueError(
                "top_k needs static map sizes; call it eagerly or trace it "
                "with concrete shapes."
            )
        pooled = max_filter(heatmaps, self.nms_kernel)
        peaks = heatmaps * ops.cast(ops.equal(pooled, heatmaps), heatmaps.dtype)
        flat = ops.reshape(ops.transpose(peaks, (0, 3, 1, 2)), (-1, k, h * w))
        values, index = ops.top_k(flat, min(self.max_people, h * w))
        index = ops.cast(index, "int32")
        # Gather the candidates' tags from the maps as they are laid out
        # (B, h * w * K * L): no transposed copy of the full-size tags.
        num_tags = tags.shape[-1]
        batch = ops.shape(index)[0]
        joint = ops.reshape(ops.arange(k, dtype="int32"), (1, k, 1, 1))
        tag_index = ops.reshape(
            ops.arange(num_tags, dtype="int32"), (1, 1, 1, -1)
        )
        flat_index = (index[..., None] * k + joint) * num_tags + tag_index
        flat_tags = ops.reshape(tags, (batch, h * w * k * num_tags))
        tag_values = ops.take_along_axis(
            flat_tags, ops.reshape(flat_index, (batch, -1)), axis=1
        )
        tag_values = ops.reshape(tag_values, ops.shape(flat_index))
        locations = ops.stack([index % w, index // w], axis=-1)
        return {"values": values, "tags": tag_values, "locations": locations}

    def candidates(self, outputs, scales=(1,), flip=True, project_size=None):
        """All test scales to candidates in one function of tensors.

        `aggregate` per scale, `merge_scales`, the heatmap clip, `top_k`:
        what a compiled call (`kerapose.inference.compiled`) runs at once.

        Args:
            outputs: one list of output maps per scale (order of `scales`),
                each of batch 2 `[image, mirrored image]` with `flip`, else
                batch 1.
            scales: the scale factors, largest first.
            flip: whether the batches hold the mirror images.
            project_size: see `aggregate`; applies to every scale.

        Returns:
            The dict of `__call__`.
        """
        per_scale = []
        for maps in outputs:
            maps = list(maps)
            plain = [m[:1] for m in maps]
            flipped = [m[1:] for m in maps] if flip else None
            per_scale.append(self.aggregate(plain, flipped, project_size))
        heatmaps, tags = self.merge_scales(
            per_scale, scales, project_size is not None
        )
        if self.max_heatmap_value is not None:
            heatmaps = ops.minimum(heatmaps, self.max_heatmap_value)
        result = self.top_k(heatmaps, tags)
        result["heatmaps"] = heatmaps
        result["tag_maps"] = tags
        return result

    def __call__(self, outputs, flipped_outputs=None, project_size=None):
        """`aggregate` then `top_k` (one scale).

        Returns:
            The dict of `top_k` plus `heatmaps` (B, h, w, K) and
            `tag_maps` (B, h, w, K, L), which the host-side adjustment and
            refinement read.
        """
        heatmaps, tags = self.aggregate(outputs, flipped_outputs, project_size)
        if self.max_heatmap_value is not None:
            heatmaps = ops.minimum(heatmaps, self.max_heatmap_value)
        result = self.top_k(heatmaps, tags)
        result["heatmaps"] = heatmaps
        result["tag_maps"] = tags
        return result

    decode = __call__

    def get_config(self):
        return {
            "num_keypoints": self.num_keypoints,
            "heatmap_outputs": list(self.heatmap_outputs),
            "tag_outputs": list(self.tag_outputs),
            "tag_dim": self.tag_dim,
            "flip_indices": self.flip_indices,
            "max_people": self.max_people,
            "nms_kernel": self.nms_kernel,
            "max_heatmap_value": self.max_heatmap_value,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
