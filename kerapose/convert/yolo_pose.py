"""Official YOLO-Pose (edgeai-yolov5 `Model`) checkpoints -> kerapose.

The official network is a flat list of layers, `model.<i>` for the yaml's
layer i (`yolo_pose_backbone.OFFICIAL_INDEX`), with the Detect head at
`model.33`. Inside a layer the kerapose sublayer names are the official
module names (`cv1`, `m0` for `m.0`, `conv_slice`).

The official training script saves the whole pickled `Model` (in float16)
under `model` and `ema`, not a state dict. `read_yolo_pose_checkpoint`
reads such files without PyTorch and without running their code: every
class becomes an inert record of its pickled state, from which the
parameters and buffers are collected under their state-dict names.
"""

import io
import re
import zipfile
from pathlib import Path

import numpy as np

from kerapose.convert.checkpoint_io import CheckpointFormatError
from kerapose.convert.checkpoint_io import _as_format_error
from kerapose.convert.checkpoint_io import _StateDictUnpickler
from kerapose.convert.checkpoint_io import as_state_dict
from kerapose.convert.checkpoint_io import strip_shared_prefix
from kerapose.convert.core import BN_LEAVES
from kerapose.convert.core import apply_state_dict
from kerapose.convert.core import conv_kernel
from kerapose.convert.core import depthwise_kernel
from kerapose.convert.core import identity
from kerapose.models.yolo_pose.yolo_pose_backbone import OFFICIAL_INDEX

DETECT_INDEX = 33
# Detect buffers: the anchors (in stride units and in pixels); they are
# configuration in kerapose, checked against the model's instead.
ANCHOR_KEYS = (
    f"model.{DETECT_INDEX}.anchors",
    f"model.{DETECT_INDEX}.anchor_grid",
)
_LEVELS = {"p3": 0, "p4": 1, "p5": 2, "p6": 3}
# Depthwise 3x3 units of the keypoint head sit at even indices 0..10, the
# final keypoint conv at 11.
_KPT_OUT_INDEX = 11


def _unit_leaf(module, layer, leaf, transform=conv_kernel):
    if layer == "conv" and leaf == "kernel":
        return f"{module}.conv.weight", transform
    if layer == "bn" and leaf in BN_LEAVES:
        return f"{module}.bn.{BN_LEAVES[leaf]}", identity
    return None


def _head_key(level, rest, depthwise_head):
    base = f"model.{DETECT_INDEX}"
    parts = rest.split("/")
    if len(parts) == 2 and parts[0] in ("det", "kpt_out"):
        leaf = {"kernel": "weight", "bias": "bias"}.get(parts[1])
        if leaf is None:
            return None
        if parts[0] == "det":
            module = f"{base}.m.{level}"
        elif depthwise_head:
            module = f"{base}.m_kpt.{level}.{_KPT_OUT_INDEX}"
        else:
            module = f"{base}.m_kpt.{level}"
        return f"{module}.{leaf}", conv_kernel if leaf == "weight" else identity
    match = re.fullmatch(r"kpt(\d+)", parts[0])
    if match is None or len(parts) != 3:
        return None
    j = int(match.group(1))
    transform = depthwise_kernel if j % 2 == 0 else conv_kernel
    return _unit_leaf(f"{base}.m_kpt.{level}.{j}", *parts[1:], transform)


def make_yolo_pose_key_map(depthwise_head=True):
    """Returns the key map for a model with or without the dw-conv head.

    The map takes a kerapose variable path and returns `(official key,
    transform)` or `None`. Example: `"csp2/m1/cv2/bn/gamma"` ->
    `"model.4.m.1.cv2.bn.weight"`; `"head_p4/kpt2/conv/kernel"` ->
    `"model.33.m_kpt.1.2.conv.weight"` (depthwise layout).
    """

    def key_map(path):
        first, _, rest = path.partition("/")
        match = re.fullmatch(r"head_(p[3-6])", first)
        if match:
            return _head_key(_LEVELS[match.group(1)], rest, depthwise_head)
        if first not in OFFICIAL_INDEX:
            return None
        parts = rest.split("/")
        if len(parts) < 2:
            return None
        inner = [re.sub(r"^m(\d+)$", r"m.\1", p) for p in parts[:-2]]
        module = ".".join([f"model.{OFFICIAL_INDEX[first]}", *inner])
        return _unit_leaf(module, parts[-2], parts[-1])

    return key_map


def _check_anchors(model, state_dict, strict):
    grid = state_dict.get(ANCHOR_KEYS[1])
    anchors = getattr(model, "anchors", None)
    if grid is None or anchors is None:
        return
    found = np.asarray(grid, "float32").reshape(len(anchors), -1, 2)
    expected = np.asarray(anchors, "float32")
    if found.shape != expected.shape or not np.allclose(found, expected):
        message = (
            "The checkpoint's anchors (model.33.anchor_grid, pixels) differ "
            f"from the model's: checkpoint {found.tolist()}, model "
            f"{expected.tolist()}. Build the model with "
            f"YOLOPoseEstimator(..., anchors={found.tolist()})."
        )
        if strict:
            raise ValueError(message)
        import warnings

        warnings.warn(message, stacklevel=3)


def convert_yolo_pose(model, checkpoint, strict=True, skip_prefixes=()):
    """Loads an official YOLO-Pose checkpoint into a kerapose model.

    Args:
        model: `YOLOPoseEstimator`, or a `YOLOPoseBackbone` alone (then the
            Detect tensors `model.33.*` count as unexpected).
        checkpoint: path to an official training checkpoint (the pickled
            `Model` under `ema`/`model`, read without running its code), a
            `.pth` state dict, `.npz` or `.safetensors` file, or a dict of
            official key -> array. A shared `module.` prefix is stripped.
        strict: bool. Raise, without assigning anything, unless every
            variable gets a tensor of the right shape and every tensor is
            used. Defaults to `True`.
        skip_prefixes: tuple of str. Variable-path prefixes to leave as
            they are, e.g. `model.head_prefixes` for another joint count.

    Returns:
        `ConversionReport`.

    Raises:
        CheckpointMismatchError: `strict` and the checkpoint does not fit.
        ValueError: `strict` and the checkpoint's anchors differ from the
            model's.
    """
    state_dict = None
    if _is_torch_zip(checkpoint):
        module = _pickled_model(_load_pickle(checkpoint))
        if module is not None:
            state_dict = _model_state_dict(module)
    if state_dict is None:
        state_dict = as_state_dict(checkpoint)
    _check_anchors(model, state_dict, strict)
    state_dict = {k: v for k, v in state_dict.items() if k not in ANCHOR_KEYS}
    depthwise = getattr(model, "depthwise_keypoint_head", True)
    return apply_state_dict(
        model,
        state_dict,
        make_yolo_pose_key_map(depthwise),
        strict=strict,
        skip_prefixes=skip_prefixes,
    )


# --- Official training checkpoints (pickled modules) -----------------------


class _Record:
    """Inert stand-in for any pickled class: keeps its state, runs nothing."""

    __slots__ = ("state",)

    def __new__(cls, *args, **kwargs):
        record = object.__new__(cls)
        record.state = None
        return record

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return type(self)()

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


class _ModuleUnpickler(_StateDictUnpickler):
    """The checkpoint reader's unpickler, with state-keeping stand-ins."""

    def find_class(self, module, name):
        found = super().find_class(module, name)
        if isinstance(found, type) and found.__name__ == "Refused":
            # A fresh class per lookup, so BUILD can't reach a shared one.
            return type("Record", (_Record,), {"__slots__": ()})
        return found


def _is_module(obj):
    return (
        isinstance(obj, _Record)
        and isinstance(obj.state, dict)
        and "_modules" in obj.state
    )


def _module_state_dict(module, prefix=""):
    out = {}
    state = module.state
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if isinstance(value, np.ndarray):
                out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if _is_module(child):
            out.update(_module_state_dict(child, f"{prefix}{name}."))
    return out


def _load_pickle(path):
    with _as_format_error(path, "corrupt or truncated torch archive"):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pkl = min(
                (n for n in names if n.rsplit("/", 1)[-1] == "data.pkl"),
                key=len,
            )
            prefix = pkl[: -len("data.pkl")]
            big = (
                archive.read(f"{prefix}byteorder").strip() == b"big"
                if (f"{prefix}byteorder" in names)
                else False
            )

            def read(key):
                return archive.read(f"{prefix}data/{key}")

            unpickler = _ModuleUnpickler(
                io.BytesIO(archive.read(pkl)),
                path,
                read,
                ">" if big else "<",
                tolerant=True,
            )
            return unpickler.load()


def _is_torch_zip(checkpoint):
    if not isinstance(checkpoint, (str, Path)):
        return False
    path = Path(checkpoint)
    if path.suffix.lower() in (".npz", ".safetensors"):
        return False
    return path.is_file() and zipfile.is_zipfile(path)


def _pickled_model(obj):
    # As the official loader: the EMA model when saved, else `model`.
    if not isinstance(obj, dict):
        return None
    return next(
        (obj[k] for k in ("ema", "model") if _is_module(obj.get(k))), None
    )


def _model_state_dict(module):
    state_dict = {
        k: v.astype("float32") if v.dtype == np.float16 else v
        for k, v in _module_state_dict(module).items()
    }
    return strip_shared_prefix(state_dict)


def read_yolo_pose_checkpoint(path):
    """Reads an official YOLO-Pose training checkpoint into a state dict.

    The file holds `{'model': Model, 'ema': Model or None, ...}` with the
    modules pickled whole. As the official loader does, `ema` is used when
    present, else `model`. No code from the file runs and PyTorch is not
    needed; float16 tensors are widened to float32.

    Args:
        path: str or `Path` to a `torch.save` zip archive.

    Returns:
        dict of official key (`model.<i>. ...`) -> numpy array.

    Raises:
        CheckpointFormatError: no pickled model under `ema` or `model`.
    """
    obj = _load_pickle(path)
    module = _pickled_model(obj)
    if module is None:
        keys = list(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointFormatError(
            f"Cannot read checkpoint {path}: no pickled YOLO model under "
            f"'ema' or 'model' (found {keys}). Pass a state dict file or "
            "the official training checkpoint (weights/last.pt)."
        )
    return _model_state_dict(module)
