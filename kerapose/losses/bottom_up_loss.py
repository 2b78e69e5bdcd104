import keras
from keras import ops

from kerapose.api_export import kerapose_export

_TAG_LOSS_TYPES = ("exp", "max")
_REDUCTIONS = ("sum", "mean")


@kerapose_export("kerapose.losses.BottomUpLoss")
class BottomUpLoss(keras.losses.Loss):
    """Heatmap and associative-embedding loss of bottom-up estimators.

    The official recipe of HigherHRNet (``MultiLossFactory``) and of the
    Associative Embedding hourglass (``calc_loss``). For each output i:

    - heatmap: ``mean over (h, w, K) of (pred - gt)^2 * mask`` per image
      (ignored pixels count in the mean with 0, as officially), compared
      with the targets of resolution ``output_resolution_index[i]``;
    - pull (outputs with tags): mean over an image's people of the mean
      over their labelled joints of ``(tag - person mean tag)^2``;
    - push: over ordered pairs of different people,
      ``sum exp(-(mean_a - mean_b)^2) / (n (n - 1)) * 0.5``
      (``tag_loss_type="max"``: ``max(0, 1 - |mean_a - mean_b|)``); 0 for
      fewer than two people.

    Each term is averaged over the batch and weighted; outputs are summed
    (HigherHRNet) or averaged (``output_reduction="mean"``, the hourglass,
    whose trainer takes the mean over stacks). Images without people give
    0 tag loss, never NaN. Everything is vectorised over the padded people
    and joints, so it traces under ``jit``/``tf.function``.

    Outputs are NHWC: channels ``[0, K)`` heatmaps, ``[K, 2K)`` tags (one
    tag per joint, outputs with tags only); extra channels are unused (the
    official hourglass predicts 68). Targets are the pipeline's dict:
    ``heatmaps_r`` (B, h_r, w_r, K), ``masks_r`` (B, h_r, w_r) and
    ``joints`` (B, P, K, 2) int ``[y * w_0 + x, labelled]`` on the
    resolution-0 map, where the tags live.

    Args:
        num_keypoints: int. K.
        output_resolution_index: list of int, per output: the target
            resolution it is supervised with (hourglass ``[0] * nstack``,
            HigherHRNet ``[0, 1]``).
        tag_outputs: list of bool, per output: it predicts tags.
        heatmap_weight: float, or one per output. Defaults to `1.0`.
        push_weight: float, or one per output. Defaults to `1e-3`.
        pull_weight: float, or one per output. Defaults to `1e-3`.
        tag_loss_type: ``"exp"`` (official configs) or ``"max"``.
        output_reduction: ``"sum"`` (HigherHRNet) or ``"mean"`` (the
            hourglass) over outputs. Defaults to `"sum"`.
        name: str. Defaults to `"bottom_up_loss"`.
    """

    def __init__(
        self,
        num_keypoints,
        output_resolution_index,
        tag_outputs,
        heatmap_weight=1.0,
        push_weight=1e-3,
        pull_weight=1e-3,
        tag_loss_type="exp",
        output_reduction="sum",
        name="bottom_up_loss",
        dtype=None,
        **kwargs,
    ):
        kwargs.pop("reduction", None)
        super().__init__(name=name, dtype=dtype, **kwargs)
        if isinstance(num_keypoints, bool) or int(num_keypoints) <= 0:
            raise ValueError(
                f"num_keypoints must be a positive int, got {num_keypoints!r}."
            )
        self.num_keypoints = int(num_keypoints)
        self.output_resolution_index = [int(r) for r in output_resolution_index]
        self.tag_outputs = [bool(t) for t in tag_outputs]
        n = len(self.output_resolution_index)
        if n == 0 or len(self.tag_outputs) != n:
            raise ValueError(
                "output_resolution_index and tag_outputs need one entry per "
                f"output, got {n} and {len(self.tag_outputs)}."
            )
        for i, (r, tags) in enumerate(
            zip(self.output_resolution_index, self.tag_outputs)
        ):
            if r < 0:
                raise ValueError(
                    f"output_resolution_index[{i}] is {r}; resolutions are "
                    "counted from 0."
                )
            if tags and r != 0:
                raise ValueError(
                    f"output {i} has tags but is supervised at resolution "
                    f"{r}: the joint indices address the resolution-0 map, "
                    "so tags must come from outputs at resolution 0."
                )
        self.heatmap_weight = _per_output(heatmap_weight, n, "heatmap_weight")
        self.push_weight = _per_output(push_weight, n, "push_weight")
        self.pull_weight = _per_output(pull_weight, n, "pull_weight")
        if tag_loss_type not in _TAG_LOSS_TYPES:
            raise ValueError(
                f"tag_loss_type must be one of {_TAG_LOSS_TYPES}, got "
                f"{tag_loss_type!r}."
            )
        self.tag_loss_type = tag_loss_type
        if output_reduction not in _REDUCTIONS:
            raise ValueError(
                f"output_reduction must be one of {_REDUCTIONS}, got "
                f"{output_reduction!r}."
            )
        self.output_reduction = output_reduction

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(
                "BottomUpLoss takes no sample_weight: the masks in the "
                "targets say which pixels count."
            )
        parts = self.components(y_true, y_pred)
        return parts["heatmap"] + parts["push"] + parts["pull"]

    def components(self, y_true, y_pred):
        """The weighted terms, each summed (or averaged) over outputs.

        Returns:
            Dict of scalars ``heatmap``, ``push`` and ``pull``.
        """
        outputs = self._check_outputs(y_pred)
        k = self.num_keypoints
        totals = {"heatmap": 0.0, "push": 0.0, "pull": 0.0}
        joints = None
        for i, output in enumerate(outputs):
            r = self.output_resolution_index[i]
            heatmaps, masks = _targets(y_true, r, i, output, k)
            pred = ops.cast(output[..., :k], "float32")
            totals["heatmap"] += self.heatmap_weight[i] * ops.mean(
                heatmap_loss(pred, heatmaps, masks)
            )
            if not self.tag_outputs[i]:
                continue
            if joints is None:
                joints = _joints(y_true, k)
            tags = ops.cast(output[..., k : 2 * k], "float32")
            push, pull = tag_loss(tags, joints, self.tag_loss_type)
            totals["push"] += self.push_weight[i] * ops.mean(push)
            totals["pull"] += self.pull_weight[i] * ops.mean(pull)
        if self.output_reduction == "mean":
            totals = {key: v / len(outputs) for key, v in totals.items()}
        return {
            key: ops.convert_to_tensor(v, "float32")
            for key, v in totals.items()
        }

    def _check_outputs(self, y_pred):
        if not isinstance(y_pred, (list, tuple)):
            y_pred = [y_pred]
        n = len(self.output_resolution_index)
        if len(y_pred) != n:
            raise ValueError(
                f"BottomUpLoss was built for {n} outputs "
                f"(output_resolution_index), got {len(y_pred)}."
            )
        k = self.num_keypoints
        for i, output in enumerate(y_pred):
            want = 2 * k if self.tag_outputs[i] else k
            shape = tuple(output.shape)
            if len(shape) != 4 or (shape[-1] is not None and shape[-1] < want):
                raise ValueError(
                    f"output {i} has shape {shape}; expected (B, h, w, C) "
                    f"with C >= {want} ({k} heatmaps"
                    f"{' then tags' if self.tag_outputs[i] else ''})."
                )
        return list(y_pred)

    def get_config(self):
        return {
            "name": self.name,
            "num_keypoints": self.num_keypoints,
            "output_resolution_index": list(self.output_resolution_index),
            "tag_outputs": list(self.tag_outputs),
            "heatmap_weight": list(self.heatmap_weight),
            "push_weight": list(self.push_weight),
            "pull_weight": list(self.pull_weight),
            "tag_loss_type": self.tag_loss_type,
            "output_reduction": self.output_reduction,
        }


def heatmap_loss(pred, heatmaps, masks):
    """Per-image masked heatmap MSE (the official ``HeatmapLoss``).

    Args:
        pred: (B, h, w, K) predicted heatmaps.
        heatmaps: (B, h, w, K) targets.
        masks: (B, h, w), 1 where the pixel counts.

    Returns:
        (B,) ``mean over (h, w, K) of (pred - gt)^2 * mask``.
    """
    pred = ops.convert_to_tensor(pred)
    error = ops.square(pred - ops.cast(heatmaps, pred.dtype))
    error = error * ops.cast(masks, pred.dtype)[..., None]
    return ops.mean(error, axis=(1, 2, 3))


def tag_loss(tags, joints, loss_type="exp"):
    """Per-image push and pull terms of the associative embedding loss.

    Args:
        tags: (B, h, w, K) tag maps (one tag per joint).
        joints: (B, P, K, 2) int ``[y * w + x, labelled]``.
        loss_type: ``"exp"`` or ``"max"`` push.

    Returns:
        ``(push, pull)``, each (B,), unweighted.
    """
    tags = ops.convert_to_tensor(tags)
    shape = ops.shape(tags)
    flat = ops.reshape(tags, (shape[0], shape[1] * shape[2], shape[3]))
    joints = ops.convert_to_tensor(joints)
    index = ops.clip(
        ops.cast(joints[..., 0], "int32"), 0, shape[1] * shape[2] - 1
    )
    labelled = ops.cast(joints[..., 1] > 0, tags.dtype)  # (B, P, K)
    # values[b, p, k] = flat[b, index[b, p, k], k]
    values = ops.take_along_axis(flat, index, axis=1)

    count = ops.sum(labelled, axis=-1)  # (B, P)
    denom = ops.maximum(count, 1.0)
    mean = ops.sum(values * labelled, axis=-1) / denom
    spread = ops.square(values - mean[..., None]) * labelled
    person_pull = ops.sum(spread, axis=-1) / denom
    present = ops.cast(count > 0, tags.dtype)  # (B, P)
    people = ops.sum(present, axis=-1)  # (B,)
    pull = ops.sum(person_pull * present, axis=-1) / ops.maximum(people, 1.0)

    diff = mean[:, :, None] - mean[:, None, :]
    if loss_type == "exp":
        similarity = ops.exp(-ops.square(diff))
    else:
        similarity = ops.relu(1.0 - ops.abs(diff))
    num = ops.shape(mean)[1]
    pairs = present[:, :, None] * present[:, None, :]
    pairs = pairs * (1.0 - ops.eye(num, dtype=tags.dtype))
    pair_sum = ops.sum(similarity * pairs, axis=(1, 2))
    # Fewer than two people: no pairs, the sum is 0 and so is the push.
    push = pair_sum / ops.maximum(people * (people - 1.0), 1.0) * 0.5
    return push, pull


def _per_output(value, n, name):
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise ValueError(
            f"{name} needs one value or one per output ({n}), got "
            f"{len(values)}."
        )
    return [float(v) for v in values]


def _targets(y_true, r, i, output, k):
    if not isinstance(y_true, dict):
        raise ValueError(
            "BottomUpLoss targets must be the pipeline's dict (heatmaps_r, "
            f"masks_r, joints), got {type(y_true).__name__}."
        )
    keys = (f"heatmaps_{r}", f"masks_{r}")
    missing = [key for key in keys if key not in y_true]
    if missing:
        raise ValueError(
            f"output {i} is supervised at resolution {r}, but the targets "
            f"lack {missing} (have {sorted(y_true)}); build the dataset "
            "with one output size per resolution."
        )
    heatmaps = ops.cast(y_true[keys[0]], "float32")
    masks = ops.cast(y_true[keys[1]], "float32")
    want, got = tuple(heatmaps.shape[1:]), tuple(output.shape[1:3]) + (k,)
    if any(
        a is not None and b is not None and a != b for a, b in zip(want, got)
    ):
        raise ValueError(
            f"output {i} is (h, w) = {got[:2]} with {k} heatmaps, but "
            f"{keys[0]} is {want}: the dataset's output sizes must match "
            "the model's outputs."
        )
    return heatmaps, masks


def _joints(y_true, k):
    if "joints" not in y_true:
        raise ValueError(
            "outputs with tags need the 'joints' target (B, P, K, 2); the "
            f"targets have {sorted(y_true)}."
        )
    joints = ops.convert_to_tensor(y_true["joints"])
    if len(joints.shape) != 4 or tuple(joints.shape[2:]) != (k, 2):
        raise ValueError(
            f"'joints' must be (B, P, {k}, 2), got {tuple(joints.shape)}."
        )
    return joints
