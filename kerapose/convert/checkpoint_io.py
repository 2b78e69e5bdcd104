"""Reads official checkpoints into flat `{key: numpy array}` dicts.

PyTorch checkpoints, both zip archives and the legacy (torch < 1.6)
format, are parsed without PyTorch through a restricted unpickler that only
knows how to rebuild tensors, so a hostile file cannot run code. Other
globals become inert stand-ins: a state dict that needs one is refused,
data beside it (a trainer's `meta`) is dropped. `.npz` and `.safetensors`
files are read with numpy alone.
"""

import contextlib
import json
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np


class CheckpointFormatError(ValueError):
    """The file is truncated, corrupt or not a checkpoint at all."""


class UnsafeCheckpointError(ValueError):
    """The checkpoint's pickle asks for code beyond a plain state dict."""


# torch storage class name -> numpy dtype ("bfloat16" is widened later).
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64",
    "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
    "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
}  # fmt: skip
_ST_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8",
    "BOOL": "bool",
}  # fmt: skip
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items() if k != "BF16"}
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_PREFIXES = ("model.module.", "module.")
# Legacy (torch < 1.6) files start with a pickle (PROTO, maybe FRAME) of the
# LONG1 magic number 0x1950a86a20f9469cfc6c, then one of version 1001.
_LEGACY_MAGIC = bytes.fromhex("8a0a6cfc9c46f9206aa85019")
_LEGACY_MAGIC_NUMBER, _LEGACY_VERSION = 0x1950A86A20F9469CFC6C, 1001


def _bf16_to_f32(raw):
    # bfloat16 is the top half of a float32; numpy has no bfloat16 dtype.
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _raw_dtype(dtype, byteorder="<"):
    # The on-disk dtype of a storage; bfloat16 is read as raw uint16.
    raw = np.dtype("uint16" if dtype == "bfloat16" else dtype)
    return raw.newbyteorder(byteorder)


class _StorageType(str):
    """Marker for a torch storage class; immutable so pickles can't patch it."""

    __slots__ = ()


# Errors raised while unpickling are plain ValueErrors; `_as_format_error`
# adds the file name and a remedy.
def _rebuild_tensor(storage, storage_offset, size, stride, metadata=None):
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise ValueError("tensor does not point at a storage")
    size, stride = tuple(map(int, size)), tuple(map(int, stride))
    offset = int(storage_offset)
    if len(size) != len(stride) or min((offset, *size, *stride)) < 0:
        raise ValueError(f"bad tensor layout {size}/{stride}")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if all(size) and last >= storage.size:
        raise ValueError(f"tensor {size} overruns its {storage.size} elements")
    base = storage[offset:] if offset < storage.size else storage[:0]
    strides = tuple(s * storage.itemsize for s in stride)
    view = np.lib.stride_tricks.as_strided(base, size, strides, writeable=False)
    array = np.array(view, copy=True, order="C")
    if isinstance(metadata, dict):
        # Lazy conj/neg bits that torch keeps per view.
        array = np.conj(array) if metadata.get("conj") else array
        array = np.negative(array) if metadata.get("neg") else array
    return array


_ALLOWED_FUNCTIONS = {  # all from torch._utils, with torch's signatures
    "_rebuild_tensor": _rebuild_tensor,
    "_rebuild_tensor_v2": lambda s, o, size, st, grad, hooks, meta=None: (
        _rebuild_tensor(s, o, size, st, meta)
    ),
    "_rebuild_parameter": lambda data, *grad_hooks_state: data,
    "_rebuild_parameter_with_state": lambda data, *grad_hooks_state: data,
}


def _is_count(n):
    return isinstance(n, int) and n >= 0


def _storage_id(pid, length):
    # ("storage", storage type, key, device, element count[, view])
    ok = isinstance(pid, tuple) and len(pid) == length and pid[0] == "storage"
    if not (ok and isinstance(pid[1], _StorageType) and _is_count(pid[4])):
        raise ValueError(f"unsupported persistent id {pid!r:.80}")
    return pid[1], str(pid[2]), pid[4]


class _Refused:
    """Inert stand-in for a global the reader will not import.

    Creating, calling or restoring one runs nothing. It lets data beside the
    state dict (e.g. the `meta` of an MMPose checkpoint, which may hold
    numpy arrays or config objects) be read and dropped; a state dict that
    contains one is refused by `_extract_state_dict`.
    """

    __slots__ = ()
    global_name = ""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return type(self)()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


def _refused_class(module, name):
    # A fresh class per lookup, so BUILD can't reach a shared one.
    attrs = {"__slots__": (), "global_name": f"{module}.{name}"}
    return type("Refused", (_Refused,), attrs)


def _refused_names(obj):
    """Names of the refused globals anywhere in `obj` (sorted)."""
    names, stack, seen = set(), [obj], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        is_class = isinstance(item, type) and issubclass(item, _Refused)
        if is_class or isinstance(item, _Refused):
            names.add(item.global_name)
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack += list(item)
    return sorted(names)


def _unsafe_error(name, path):
    return UnsafeCheckpointError(
        f"Refusing to load global '{name}' from {path}: "
        "the file tries to import code, and kerapose only reads plain "
        "state dicts (tensors in dicts). If you trust the file, load it "
        "in PyTorch and re-save just `model.state_dict()`."
    )


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickler that can only build dicts, tuples and tensors.

    `read_raw(key)` returns the bytes of storage `key` in `byteorder`. With
    `tolerant`, other globals become inert `_Refused` stand-ins instead of
    raising, so the caller decides whether the part it keeps needed them.
    """

    _functions = _ALLOWED_FUNCTIONS

    def __init__(self, file, path, read_raw, byteorder="<", tolerant=False):
        super().__init__(file)
        self._path, self._read_raw = path, read_raw
        self._byteorder = byteorder
        self._tolerant = tolerant
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict  # built-in types cannot be patched via BUILD
        if module == "torch" and name == "Size":
            return tuple
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch._utils" and name in self._functions:
            fn = self._functions[name]
            # A fresh wrapper per lookup, so BUILD can't patch our functions.
            return lambda *args, **kwargs: fn(*args, **kwargs)
        if self._tolerant:
            return _refused_class(module, name)
        raise _unsafe_error(f"{module}.{name}", self._path)

    def persistent_load(self, pid):
        return self._storage(*_storage_id(pid, 5))

    def _storage(self, dtype, key, numel):
        if key not in self._storages:
            self._storages[key] = self._read_storage(key, dtype, numel)
        return self._storages[key]

    def _read_storage(self, key, dtype, numel):
        raw_dtype = _raw_dtype(dtype, self._byteorder)
        raw = self._read_raw(key)  # KeyError names a missing record
        if len(raw) < numel * raw_dtype.itemsize:
            need = numel * raw_dtype.itemsize
            raise ValueError(f"storage {key} has {len(raw)} bytes, not {need}")
        array = np.frombuffer(raw, raw_dtype, count=numel)
        array = array.astype(raw_dtype.newbyteorder("="))
        return _bf16_to_f32(array) if dtype == "bfloat16" else array


class _LegacyUnpickler(_StateDictUnpickler):
    """Reads the pickles of a legacy file, whose storages follow its pickle.

    Without `raw` ({key: bytes}) it is a dry run that builds no tensors but
    records `{key: (dtype, numel)}` in `found`, which says how to read them.
    """

    def __init__(self, file, path, raw=None, tolerant=False):
        read_raw = None if raw is None else raw.__getitem__
        super().__init__(file, path, read_raw, tolerant=tolerant)
        if raw is None:  # rebuild nothing: the storages are not read yet
            self._functions = dict.fromkeys(_ALLOWED_FUNCTIONS, _no_op)
        self.found = {}

    def persistent_load(self, pid):
        # The 6th item is None or a view (view key, offset, element count).
        dtype, key, numel = _storage_id(pid, 6)
        self.found.setdefault(key, (dtype, numel))
        if self._read_raw is None:
            return None
        storage, view = self._storage(dtype, key, numel), pid[5]
        if view is None:
            return storage
        _, offset, size = view
        if not (_is_count(offset) and _is_count(size)) or (
            offset + size > storage.size
        ):
            raise ValueError(f"bad storage view {view!r:.80} of {key}")
        return storage[offset : offset + size]


def _no_op(*args, **kwargs):
    return None


def _format_error(path, what, todo):
    message = f"Cannot read checkpoint {path}: {what}. {todo}"
    return CheckpointFormatError(message)


@contextlib.contextmanager
def _as_format_error(path, what, todo="Download or save the file again."):
    # Adds the file and a remedy to low-level zipfile/pickle/json errors.
    try:
        yield
    except (UnsafeCheckpointError, CheckpointFormatError):
        raise
    except Exception as e:
        detail = f"{what} ({type(e).__name__}: {e})"
        raise _format_error(path, detail, todo) from e


def _read_torch_zip(path):
    with _as_format_error(path, "corrupt or truncated torch archive"):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pkls = [n for n in names if n.rsplit("/", 1)[-1] == "data.pkl"]
            if not pkls:
                raise ValueError("no data.pkl, so not written by torch.save")
            pkl = min(pkls, key=len)
            prefix = pkl[: -len("data.pkl")]
            order = "<"
            if f"{prefix}byteorder" in names:
                big = archive.read(f"{prefix}byteorder").strip() == b"big"
                order = ">" if big else "<"

            def read(key):
                return archive.read(f"{prefix}data/{key}")

            with archive.open(pkl) as f:
                unpickler = _StateDictUnpickler(
                    f, path, read, order, tolerant=True
                )
                return unpickler.load()


def _read_legacy_storages(f, keys, found, little_endian):
    # Per key: an int64 element count, then the elements. torch always
    # writes the elements little-endian; old versions wrote the count in the
    # saving host's byte order (sys_info), newer ones little-endian.
    if not isinstance(keys, list):
        raise ValueError(f"storage key list is a {type(keys).__name__}")
    orders = "<" if little_endian else "<>"
    file_size, raw = os.fstat(f.fileno()).st_size, {}
    for key in keys:
        if key not in found:
            raise ValueError(f"storage {key!r:.40} is not used by any tensor")
        dtype, numel = found[key]
        head, need = f.read(8), numel * _raw_dtype(dtype).itemsize
        if len(head) < 8 or need > file_size - f.tell():
            raise ValueError(f"file ends inside storage {key!r:.40}")
        counts = [struct.unpack(f"{o}q", head)[0] for o in orders]
        if numel not in counts:
            raise ValueError(f"storage {key!r:.40} has {counts[0]} elements")
        raw[key] = f.read(need)
    return raw


def _read_torch_legacy(path):
    with _as_format_error(path, "corrupt or truncated legacy torch file"):
        with open(path, "rb") as f:
            magic, version, sys_info = (
                _LegacyUnpickler(f, path).load() for _ in range(3)
            )
            if (magic, version) != (_LEGACY_MAGIC_NUMBER, _LEGACY_VERSION):
                raise ValueError(f"bad magic number or version {version!r:.9}")
            if not isinstance(sys_info, dict):
                raise ValueError("sys_info is not a dict")
            start = f.tell()
            # The main pickle: finds what to read next. Header pickles
            # (above, and the key list below) stay strict.
            dry_run = _LegacyUnpickler(f, path, tolerant=True)
            dry_run.load()
            keys = _LegacyUnpickler(f, path).load()
            little = sys_info.get("little_endian", True)
            raw = _read_legacy_storages(f, keys, dry_run.found, little)
            f.seek(start)
            return _LegacyUnpickler(f, path, raw, tolerant=True).load()


def _read_with_torch(path, builtin):
    import torch

    with _as_format_error(path, "torch.load failed"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # torch refuses the whole file for one unknown global, even one
            # outside the state dict (an MMPose `meta`); the built-in reader
            # keeps what is plain data and refuses a state dict needing code.
            return builtin(path)

    def to_numpy(value):
        if isinstance(value, dict):
            return {k: to_numpy(v) for k, v in value.items()}
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:
                value = value.float()
            return value.numpy().copy()  # C order, 0-d stays 0-d
        return value

    return to_numpy(obj)


def _read_torch(path, use_torch):
    if use_torch is None:
        try:
            import torch  # noqa: F401

            use_torch = True
        except ImportError:
            use_torch = False
    with open(path, "rb") as f:
        head = f.read(23)
    if zipfile.is_zipfile(path):
        builtin = _read_torch_zip
    elif head[:1] == b"\x80" and _LEGACY_MAGIC in head:
        builtin = _read_torch_legacy
    elif head.startswith(b"PK\x03\x04"):
        what = "zip archive (torch.save format) that is truncated or corrupt"
        raise _format_error(path, what, "Download or save the file again.")
    else:
        what = "neither a torch zip archive nor a legacy torch file"
        todo = "Check that this is a PyTorch checkpoint (.pth/.pt/.bin)."
        raise _format_error(path, what, todo)
    return _read_with_torch(path, builtin) if use_torch else builtin(path)


def _read_safetensors(path):
    data = Path(path).read_bytes()
    with _as_format_error(path, "invalid safetensors file"):
        (length,) = struct.unpack("<Q", data[:8])
        if length > len(data) - 8:
            raise ValueError(f"header length {length} exceeds file size")
        header = json.loads(data[8 : 8 + length])
        body = memoryview(data)[8 + length :]
        out = {}
        for name, spec in header.items():
            if name == "__metadata__":
                continue
            dtype = _ST_DTYPES[spec["dtype"]]
            raw = np.dtype("<u2" if dtype == "bfloat16" else dtype)
            shape = tuple(int(n) for n in spec["shape"])
            begin, end = (int(n) for n in spec["data_offsets"])
            if not 0 <= begin <= end <= len(body) or (
                end - begin != int(np.prod(shape)) * raw.itemsize
            ):
                raise ValueError(f"bad data_offsets for {name!r}")
            array = np.frombuffer(body[begin:end], raw.newbyteorder("<"))
            array = array.astype(raw.newbyteorder("=")).reshape(shape)
            out[name] = _bf16_to_f32(array) if dtype == "bfloat16" else array
        return out


def _read_npz(path):
    todo = "Re-create it with numpy.savez (no object arrays)."
    with _as_format_error(path, "invalid .npz file", todo):
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}


def _is_tensor_dict(obj):
    return isinstance(obj, dict) and all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()
    )


def _extract_state_dict(obj, path):
    if not _is_tensor_dict(obj):
        found = []
        if isinstance(obj, dict):
            found = [k for k in _WRAPPER_KEYS if _is_tensor_dict(obj.get(k))]
        if len(found) != 1:
            refused = _refused_names(obj)
            if refused:
                raise _unsafe_error(refused[0], path)
            keys = list(obj)[:10] if isinstance(obj, dict) else type(obj)
            raise _format_error(
                path,
                f"no single state dict of tensors in {keys}",
                f"Save the tensor dict alone, or under one of {_WRAPPER_KEYS}.",
            )
        obj = obj[found[0]]  # wrapper extras such as `epoch` are dropped
    return strip_shared_prefix(obj)


def strip_shared_prefix(state_dict):
    """Drops a `module.` / `model.module.` prefix shared by every key (what
    `DataParallel` and some trainers add)."""
    for prefix in _PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def as_state_dict(checkpoint):
    """A checkpoint path read with `read_checkpoint`, or a dict of official
    key -> array with its shared wrapper prefix stripped."""
    if isinstance(checkpoint, dict):
        return strip_shared_prefix(checkpoint)
    return read_checkpoint(checkpoint)


def read_checkpoint(path, use_torch=None):
    """Reads a checkpoint into a flat `{official key: numpy array}` dict.

    Args:
        path: str or `Path`. A PyTorch checkpoint (`.pth`, `.pt`, `.bin`,
            ...), a `.npz` or a `.safetensors` file. A dict wrapping the
            state dict under `state_dict`, `model` or `model_state_dict` is
            unwrapped (the rest, e.g. MMPose's `meta`, is dropped unread
            even when it names classes) and a shared `module.` /
            `model.module.` key prefix is stripped.
        use_torch: bool or `None`. PyTorch files only: `True` reads with
            `torch.load(weights_only=True)`, `False` with the built-in
            torch-free reader (zip and legacy torch < 1.6 files); `None`
            uses torch when it is importable.

    Returns:
        dict of str to C-contiguous numpy arrays; bfloat16 becomes float32.

    Raises:
        CheckpointFormatError: truncated, corrupt or not a checkpoint.
        UnsafeCheckpointError: the state dict (or the pickle framing a
            legacy file) tries to import code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path)
    if suffix == ".safetensors":
        return _read_safetensors(path)
    return _extract_state_dict(_read_torch(path, use_torch), path)


def write_safetensors(path, tensors):
    """Writes numpy arrays to a `.safetensors` file.

    Args:
        path: str or `Path`. Destination file.
        tensors: dict of str to array-like. bfloat16 is not supported
            (numpy has no such dtype); store float32 instead.
    """
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        if array.dtype.name not in _ST_NAMES:
            raise ValueError(f"{name!r}: unsupported dtype {array.dtype}")
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": _ST_NAMES[array.dtype.name],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # safetensors pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob + b"".join(chunks))
