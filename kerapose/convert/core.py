"""Family-independent machinery for loading official state dicts.

A family converter supplies a `key_map`: a function from a kerapose variable
path (Keras `variable.path`, e.g. `"stem_conv1/conv/kernel"`) to the
official key and a layout transform, or `None` when the variable has no
official counterpart. `apply_state_dict` checks every variable first and
only then assigns, so a failed strict load leaves the model untouched.
"""

import dataclasses
import warnings

import numpy as np

# Keras BatchNormalization weight -> PyTorch BatchNorm parameter or buffer.
BN_LEAVES = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
# Longest list printed per report section; the counts are always complete.
_MAX_LISTED = 20


def identity(array):
    """Biases, BatchNorm tensors: same layout in both frameworks."""
    return array


def conv_kernel(array):
    """`Conv2d.weight` (O, I, kh, kw) -> `Conv2D.kernel` (kh, kw, I, O)."""
    return np.transpose(array, (2, 3, 1, 0))


def depthwise_kernel(array):
    """Depthwise (C, 1, kh, kw) -> `DepthwiseConv2D.kernel` (kh, kw, C, 1)."""
    return np.transpose(array, (2, 3, 0, 1))


def conv_transpose_kernel(array):
    """`ConvTranspose2d.weight` (I, O, kh, kw) -> (kh, kw, O, I)."""
    return np.transpose(array, (2, 3, 1, 0))


def dense_kernel(array):
    """`Linear.weight` (O, I) -> `Dense.kernel` (I, O)."""
    return np.transpose(array, (1, 0))


def _listing(title, lines):
    if not lines:
        return []
    shown = [f"  {line}" for line in lines[:_MAX_LISTED]]
    if len(lines) > _MAX_LISTED:
        shown.append(f"  ... and {len(lines) - _MAX_LISTED} more")
    return [f"{title} ({len(lines)}):", *shown]


@dataclasses.dataclass
class ConversionReport:
    """What a checkpoint conversion matched, and what it could not.

    Attributes:
        loaded: dict. Kerapose variable path -> official key it came from.
        missing: dict. Variable path -> the official key it expected
            (`None` when no official counterpart is known).
        unexpected: dict. Checkpoint key -> shape, for tensors not used.
        mismatched: list of `(path, key, model_shape, checkpoint_shape)`;
            `checkpoint_shape` is after the layout transform when it
            applied, otherwise the raw shape.
        skipped: dict. Variable path -> official key, for variables left
            out on purpose (`skip_prefixes`).
        ignored: list of checkpoint keys dropped by design (e.g.
            `num_batches_tracked`).
        hint: str. A likely cause when the load failed, else `""`.
    """

    loaded: dict = dataclasses.field(default_factory=dict)
    missing: dict = dataclasses.field(default_factory=dict)
    unexpected: dict = dataclasses.field(default_factory=dict)
    mismatched: list = dataclasses.field(default_factory=list)
    skipped: dict = dataclasses.field(default_factory=dict)
    ignored: list = dataclasses.field(default_factory=list)
    hint: str = ""

    @property
    def ok(self):
        """True when every variable (bar skipped ones) got a tensor."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self):
        total = len(self.loaded) + len(self.missing) + len(self.mismatched)
        lines = [
            f"Loaded {len(self.loaded)} of {total} variables "
            f"({len(self.skipped)} skipped, {len(self.ignored)} checkpoint "
            "entries ignored)."
        ]
        lines += _listing(
            "Missing: model variables with no checkpoint tensor",
            [
                f"{p} <- {k or '(no official key)'}"
                for p, k in self.missing.items()
            ],
        )
        lines += _listing(
            "Unexpected: checkpoint tensors not used",
            [f"{k} {list(s)}" for k, s in self.unexpected.items()],
        )
        lines += _listing(
            "Shape mismatches",
            [
                f"{p} <- {k}: model {tuple(m)}, checkpoint {tuple(c)}"
                for p, k, m, c in self.mismatched
            ],
        )
        lines += _listing(
            "Skipped on request",
            [
                f"{p} <- {k or '(no official key)'}"
                for p, k in self.skipped.items()
            ],
        )
        if self.hint:
            lines.append(f"Hint: {self.hint}")
        return "\n".join(lines)


class CheckpointMismatchError(ValueError):
    """A strict load found missing, unexpected or mis-shaped tensors.

    Attributes:
        report: the `ConversionReport`; nothing was assigned.
    """

    def __init__(self, report):
        super().__init__(f"Checkpoint does not fit the model.\n{report}")
        self.report = report


def _hint(report, head_prefixes, num_checkpoint_tensors):
    num_vars = len(report.loaded) + len(report.missing) + len(report.mismatched)
    matched = len(report.loaded) + len(report.mismatched)
    # Overlap against the larger side, so a checkpoint that contains this
    # model plus much more (OmniPose around HRNet) also counts as foreign.
    if matched < 0.8 * max(num_vars, num_checkpoint_tensors):
        return (
            "this looks like a checkpoint of another architecture: only "
            f"{matched} tensors match by name, out of {num_vars} model "
            f"variables and {num_checkpoint_tensors} checkpoint tensors. "
            "Check the model family and its configuration."
        )
    heads = [
        m for m in report.mismatched if m[0].startswith(tuple(head_prefixes))
    ]
    if heads and len(heads) == len(report.mismatched):
        if not (report.missing or report.unexpected):
            # Output channels are last after the transform (HWIO, bias).
            joints = heads[0][3][-1]
            return (
                f"different joint count: the checkpoint predicts {joints} "
                f"keypoints, the model {heads[0][2][-1]}. Pass "
                f"num_keypoints={joints} when building the model, or "
                f"skip_prefixes={tuple(head_prefixes)!r} to load all but "
                "the head."
            )
    if len(report.mismatched) > len(report.loaded):
        return (
            "the layer layout matches but most shapes differ: this is "
            "probably another width or depth of the same architecture."
        )
    return ""


def apply_state_dict(
    model,
    state_dict,
    key_map,
    *,
    strict=True,
    skip_prefixes=(),
    ignore_suffixes=("num_batches_tracked",),
):
    """Assigns official tensors to a kerapose model's variables.

    Args:
        model: a built Keras model (or layer).
        state_dict: dict of official key -> array-like.
        key_map: callable. Variable path -> `(official key, transform)` or
            `None`; `transform` turns the official array into the Keras
            layout.
        strict: bool. If `True`, any missing, unexpected or mis-shaped
            tensor raises and nothing is assigned. If `False`, everything
            that fits is assigned and the report is issued as a warning.
        skip_prefixes: tuple of str. Variable-path prefixes to leave
            untouched (e.g. a head whose keypoint count differs); their
            official tensors do not count as unexpected.
        ignore_suffixes: tuple of str. Checkpoint keys ending in one of
            these are dropped without comment.

    Returns:
        `ConversionReport`.

    Raises:
        CheckpointMismatchError: `strict` and the checkpoint does not fit.
    """
    report = ConversionReport()
    sources = {}
    for key, value in state_dict.items():
        if key.endswith(tuple(ignore_suffixes)):
            report.ignored.append(key)
        else:
            sources[key] = value
    used, pending = set(), []
    for variable in model.weights:
        path = variable.path
        entry = key_map(path)
        key, transform = entry if entry is not None else (None, None)
        if path.startswith(tuple(skip_prefixes)):
            report.skipped[path] = key
            used.add(key)
            continue
        if key not in sources:
            report.missing[path] = key
            continue
        used.add(key)
        array = np.asarray(sources[key])
        try:
            array = transform(array)
        except ValueError:  # wrong rank for the transpose
            pass
        expected = tuple(variable.shape)
        if tuple(array.shape) != expected:
            report.mismatched.append((path, key, expected, array.shape))
            continue
        report.loaded[path] = key
        pending.append((variable, array))
    report.unexpected = {
        k: np.shape(v) for k, v in sources.items() if k not in used
    }
    if not report.ok:
        head_prefixes = getattr(model, "head_prefixes", ())
        report.hint = _hint(report, head_prefixes, len(sources))
        if strict:
            raise CheckpointMismatchError(report)
        warnings.warn(f"Partial checkpoint load.\n{report}", stacklevel=2)
    for variable, array in pending:
        variable.assign(array.astype(variable.dtype))
    return report
