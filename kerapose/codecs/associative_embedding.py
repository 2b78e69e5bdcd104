"""In-graph part of the Associative Embedding decoding (bottom-up models).

Aggregates the output maps of a bottom-up network the way the official
HigherHRNet test does (flip average, resize to a common size, multi-scale
average), suppresses non-maxima by max-pooling and keeps the top k
candidates of every joint. Grouping the candidates into people runs on the
host (`kerapose.inference.grouping`).

Shapes: B batch, K keypoints, (h, w) a map, L tag values per candidate
(tag_dim per tag output, times 2 with the flip test), k candidates.
"""

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


def _resize(x, size):
    x = ops.convert_to_tensor(x)
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    # Bilinear with half-pixel centres = PyTorch's align_corners=False.
    return ops.image.resize(x, size, interpolation="bilinear")


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
        pooled = ops.max_pool(
            heatmaps, self.nms_kernel, strides=1, padding="same"
        )
        peaks = heatmaps * ops.cast(ops.equal(pooled, heatmaps), heatmaps.dtype)
        flat = ops.reshape(ops.transpose(peaks, (0, 3, 1, 2)), (-1, k, h * w))
        values, index = ops.top_k(flat, min(self.max_people, h * w))
        index = ops.cast(index, "int32")
        num_tags = tags.shape[-1]
        flat_tags = ops.reshape(
            ops.transpose(tags, (0, 3, 1, 2, 4)), (-1, k, h * w, num_tags)
        )
        gather = ops.repeat(ops.expand_dims(index, -1), num_tags, axis=-1)
        tag_values = ops.take_along_axis(flat_tags, gather, axis=2)
        locations = ops.stack([index % w, index // w], axis=-1)
        return {"values": values, "tags": tag_values, "locations": locations}

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
