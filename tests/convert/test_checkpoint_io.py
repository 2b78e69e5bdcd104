"""Tests for the torch-free checkpoint reader, on real files."""

import io
import os
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from kerapose.convert.checkpoint_io import CheckpointFormatError
from kerapose.convert.checkpoint_io import UnsafeCheckpointError
from kerapose.convert.checkpoint_io import read_checkpoint
from kerapose.convert.checkpoint_io import write_safetensors

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
HRNET = REFERENCE / "hrnet_tiny"
REPO_ROOT = Path(__file__).resolve().parents[2]
LEGACY_MAGIC, LEGACY_VERSION = 0x1950A86A20F9469CFC6C, 1001
SYS_INFO = {
    "protocol_version": LEGACY_VERSION,
    "little_endian": True,
    "type_sizes": {"short": 2, "int": 4, "long": 8},
}


@pytest.fixture
def hrnet_pth():
    if not (HRNET / "model.pth").is_file():
        pytest.skip(f"reference checkpoint not found under {HRNET}")
    return HRNET / "model.pth"


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def hrnet_legacy(tmp_path_factory):
    """The reference state dict re-saved in the legacy (torch < 1.6) format."""
    torch = pytest.importorskip("torch")
    if not (HRNET / "model.pth").is_file():
        pytest.skip(f"reference checkpoint not found under {HRNET}")
    state = torch.load(HRNET / "model.pth", map_location="cpu")
    path = tmp_path_factory.mktemp("legacy") / "hrnet_legacy.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    return path


def run_without_torch(code):
    """Runs `code` in a fresh interpreter where `import torch` fails."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['torch'] = None\n" + code,
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
        # Without torch the keras import must not ask for the torch backend.
        env={**os.environ, "KERAS_BACKEND": "tensorflow"},
    )
    return out.stdout.split()


def assert_same(actual, expected):
    assert list(actual) == list(expected)
    for key, value in expected.items():
        value = np.asarray(value)
        assert actual[key].dtype == value.dtype, key
        assert actual[key].shape == value.shape, key
        np.testing.assert_array_equal(actual[key], value, err_msg=key)


def as_numpy(torch, state_dict):
    return {
        k: (v.float() if v.dtype == torch.bfloat16 else v).numpy()
        for k, v in state_dict.items()
    }


# Reference checkpoint ------------------------------------------------------


def test_reference_pth_without_torch_equals_npz(hrnet_pth):
    if not (HRNET / "weights.npz").is_file():
        pytest.skip(f"weights.npz not found under {HRNET}")
    weights = read_checkpoint(hrnet_pth, use_torch=False)
    expected = read_checkpoint(HRNET / "weights.npz")
    assert set(weights) == set(expected)
    assert any(k.endswith("num_batches_tracked") for k in weights)
    assert_same(weights, {k: expected[k] for k in weights})


def test_reference_pth_torch_and_builtin_readers_agree(hrnet_pth, torch):
    builtin = read_checkpoint(hrnet_pth, use_torch=False)
    assert_same(read_checkpoint(hrnet_pth, use_torch=True), builtin)
    assert_same(read_checkpoint(hrnet_pth), builtin)


def test_module_does_not_import_torch_and_works_without_it(hrnet_pth):
    # As on a torch-free box.
    code = (
        "from kerapose.convert import checkpoint_io as io\n"
        f"w = io.read_checkpoint({str(hrnet_pth)!r})\n"
        "print(len(w), 'torch' in sys.modules and sys.modules['torch'])"
    )
    n_keys = len(read_checkpoint(hrnet_pth, use_torch=False))
    assert run_without_torch(code) == [str(n_keys), "None"]


def test_legacy_reference_without_torch_equals_npz(hrnet_legacy):
    if not (HRNET / "weights.npz").is_file():
        pytest.skip(f"weights.npz not found under {HRNET}")
    code = (
        "import numpy as np\n"
        "from kerapose.convert import checkpoint_io as io\n"
        f"w = io.read_checkpoint({str(hrnet_legacy)!r})\n"
        f"e = io.read_checkpoint({str(HRNET / 'weights.npz')!r})\n"
        "same = set(w) == set(e) and all(\n"
        "    w[k].dtype == e[k].dtype and w[k].shape == e[k].shape\n"
        "    and np.array_equal(w[k], e[k]) for k in e)\n"
        "tracked = any(k.endswith('num_batches_tracked') for k in w)\n"
        "print(len(w), same, tracked, sys.modules['torch'])"
    )
    n_keys = len(read_checkpoint(HRNET / "weights.npz"))
    assert run_without_torch(code) == [str(n_keys), "True", "True", "None"]


def test_legacy_reference_torch_and_builtin_readers_agree(hrnet_legacy):
    builtin = read_checkpoint(hrnet_legacy, use_torch=False)
    assert_same(read_checkpoint(hrnet_legacy, use_torch=True), builtin)
    zipped = read_checkpoint(HRNET / "model.pth", use_torch=False)
    assert_same(builtin, zipped)


# Checkpoints written by torch ----------------------------------------------


@pytest.fixture
def tricky_state_dict(torch):
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=gen)
    return {
        "fc.weight": base.t(),  # non-contiguous view
        "fc.bias": base[2, 1:4],  # offset into a shared storage
        "half": torch.randn(3, 2, generator=gen).half(),
        "bf16": torch.randn(4, generator=gen).bfloat16(),
        "ids": torch.arange(-3, 5, dtype=torch.int64).reshape(2, 4),
        "mask": torch.tensor([True, False, True]),
        "bytes": torch.tensor([0, 7, 255], dtype=torch.uint8),
        "double": torch.randn(2, 2, dtype=torch.float64, generator=gen),
        "bn.num_batches_tracked": torch.tensor(42),
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(torch.ones(2)),
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("use_torch", [False, True])
def test_torch_saved_tensors_round_trip(
    tmp_path, torch, tricky_state_dict, use_torch, legacy
):
    path = tmp_path / "tricky.pth"
    torch.save(
        tricky_state_dict, path, _use_new_zipfile_serialization=not legacy
    )
    weights = read_checkpoint(path, use_torch=use_torch)
    expected = as_numpy(
        torch, {k: v.detach() for k, v in tricky_state_dict.items()}
    )
    assert_same(weights, expected)
    assert weights["bf16"].dtype == np.float32
    assert all(v.flags.c_contiguous for v in weights.values())


@pytest.mark.parametrize("use_torch", [False, True])
@pytest.mark.parametrize(
    "wrapper, prefix",
    [
        (None, "module."),
        (None, "model.module."),
        ("state_dict", ""),
        ("model", "module."),
        ("model_state_dict", ""),
    ],
)
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_wrappers_and_prefixes(
    tmp_path, torch, wrapper, prefix, use_torch, legacy
):
    state = {"conv.weight": torch.randn(2, 3), "bn.bias": torch.zeros(2)}
    obj = {prefix + k: v for k, v in state.items()}
    if wrapper:
        obj = {wrapper: obj, "epoch": 3, "meta": {"lr": 0.1}}
    new_format = not legacy
    torch.save(
        obj, tmp_path / "ckpt.pt", _use_new_zipfile_serialization=new_format
    )
    weights = read_checkpoint(tmp_path / "ckpt.pt", use_torch=use_torch)
    assert_same(weights, as_numpy(torch, state))


def test_prefix_kept_unless_every_key_has_it(tmp_path, torch):
    state = {"module.a": torch.ones(1), "b": torch.zeros(1)}
    torch.save(state, tmp_path / "mixed.pth")
    assert list(read_checkpoint(tmp_path / "mixed.pth", use_torch=False)) == [
        "module.a",
        "b",
    ]


def test_not_a_state_dict_is_rejected(tmp_path, torch):
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointFormatError, match="state dict"):
        read_checkpoint(tmp_path / "meta.pth", use_torch=False)


# Legacy files made by hand (layouts torch no longer writes) --------------


class _Storage:
    """Stands in for a torch storage; pickled as a persistent id."""

    def __init__(self, *pid):
        self.pid = ("storage", *pid)


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, OrderedDict())

    def __reduce__(self):
        from torch._utils import _rebuild_tensor_v2

        return _rebuild_tensor_v2, self.args


class _LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Storage) else None


def _write_legacy(path, obj, storages, sys_info=SYS_INFO, count_order="little"):
    """torch's legacy layout; `storages` maps keys to numpy arrays."""
    out = io.BytesIO()
    for header in (LEGACY_MAGIC, LEGACY_VERSION, sys_info):
        pickle.dump(header, out, protocol=2)
    _LegacyPickler(out, protocol=2).dump(obj)
    pickle.dump(list(storages), out, protocol=2)
    for array in storages.values():
        out.write(array.size.to_bytes(8, count_order))
        out.write(array.astype(array.dtype.newbyteorder("<")).tobytes())
    path.write_bytes(out.getvalue())


def test_legacy_storage_views(tmp_path, torch):
    # torch < 1.0 could save a storage as a view into a larger one.
    path = tmp_path / "views.pth"
    root = np.arange(10, dtype=np.float32)
    whole = _Storage(torch.FloatStorage, "7", "cpu", 10, None)
    view = _Storage(torch.FloatStorage, "7", "cpu", 10, ("8", 4, 6))
    obj = {
        "view": _Tensor(view, 1, (2, 2), (2, 1)),
        "whole": _Tensor(whole, 0, (10,), (1,)),
    }
    _write_legacy(path, obj, {"7": root})
    expected = {"view": root[5:9].reshape(2, 2), "whole": root}
    assert_same(read_checkpoint(path, use_torch=False), expected)
    assert_same(read_checkpoint(path, use_torch=True), expected)


def test_legacy_view_outside_its_storage(tmp_path, torch):
    path = tmp_path / "bad_view.pth"
    view = _Storage(torch.FloatStorage, "7", "cpu", 10, ("8", 8, 6))
    obj = {"w": _Tensor(view, 0, (1,), (1,))}
    _write_legacy(path, obj, {"7": np.zeros(10, np.float32)})
    with pytest.raises(CheckpointFormatError, match="view") as info:
        read_checkpoint(path, use_torch=False)
    assert str(path) in str(info.value)


def test_legacy_big_endian_host(tmp_path, torch):
    # Old torch on big-endian hosts wrote the element count in host order;
    # the elements themselves are always little-endian.
    path = tmp_path / "big.pth"
    values = np.array([1.5, -2.0, 3.25], np.float64)
    storage = _Storage(torch.DoubleStorage, "0", "cpu", 3, None)
    obj = {"w": _Tensor(storage, 0, (3,), (1,))}
    sys_info = {**SYS_INFO, "little_endian": False}
    _write_legacy(path, obj, {"0": values}, sys_info, count_order="big")
    assert_same(read_checkpoint(path, use_torch=False), {"w": values})


def test_legacy_wrong_element_count(tmp_path, torch):
    path = tmp_path / "count.pth"
    storage = _Storage(torch.FloatStorage, "0", "cpu", 4, None)
    obj = {"w": _Tensor(storage, 0, (3,), (1,))}
    _write_legacy(path, obj, {"0": np.zeros(3, np.float32)})
    with pytest.raises(CheckpointFormatError, match="elements|ends") as info:
        read_checkpoint(path, use_torch=False)
    assert str(path) in str(info.value)


# Safety --------------------------------------------------------------------


class _Exploit:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _write_torch_layout_zip(path, pickle_bytes):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("func", [os.system, eval])
@pytest.mark.parametrize("use_torch", [False, True])
def test_malicious_pickle_is_refused(tmp_path, protocol, func, use_torch):
    if use_torch:
        pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    command = f"echo pwned > {marker}"
    if func is eval:
        command = f"open({str(marker)!r}, 'w').write('pwned')"
    payload = {"weight": _Exploit(func, command)}
    path = tmp_path / "evil.pth"
    _write_torch_layout_zip(path, pickle.dumps(payload, protocol=protocol))
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(path, use_torch=use_torch)
    message = str(info.value)
    assert func.__name__ in message and "import code" in message
    assert str(path) in message
    assert not marker.exists()


@pytest.mark.parametrize("func", [os.system, eval])
@pytest.mark.parametrize("use_torch", [False, True])
def test_malicious_legacy_pickle_is_refused(tmp_path, torch, func, use_torch):
    marker = tmp_path / "pwned"
    command = f"echo pwned > {marker}"
    if func is eval:
        command = f"open({str(marker)!r}, 'w').write('pwned')"
    path = tmp_path / "evil.pth"
    payload = {"weight": torch.zeros(2), "bias": _Exploit(func, command)}
    torch.save(payload, path, _use_new_zipfile_serialization=False)
    assert not marker.exists() and not zipfile.is_zipfile(path)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(path, use_torch=use_torch)
    message = str(info.value)
    assert func.__name__ in message and "import code" in message
    assert str(path) in message
    assert not marker.exists()


@pytest.mark.parametrize("where", ["version", "sys_info", "main", "keys"])
def test_malicious_legacy_header_is_refused(tmp_path, where):
    # Every pickle of a legacy file goes through the restricted unpickler.
    marker = tmp_path / "pwned"
    parts = {
        "magic": LEGACY_MAGIC,
        "version": LEGACY_VERSION,
        "sys_info": SYS_INFO,
        "main": {},
        "keys": [],
    }
    parts[where] = _Exploit(os.system, f"echo pwned > {marker}")
    path = tmp_path / "evil.pth"
    path.write_bytes(b"".join(pickle.dumps(p, 2) for p in parts.values()))
    with pytest.raises(UnsafeCheckpointError, match="system") as info:
        read_checkpoint(path, use_torch=False)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_refuses_unlisted_torch_global(tmp_path):
    # Only the listed rebuild helpers are allowed, not all of torch.
    data = b"\x80\x02ctorch\nload\nq\x00."
    _write_torch_layout_zip(tmp_path / "x.pth", data)
    with pytest.raises(UnsafeCheckpointError, match="torch.load"):
        read_checkpoint(tmp_path / "x.pth", use_torch=False)


# Corrupt files -------------------------------------------------------------


@pytest.mark.parametrize("use_torch", [False, None])
def test_truncated_checkpoint(tmp_path, hrnet_pth, use_torch):
    data = hrnet_pth.read_bytes()
    path = tmp_path / "half.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFormatError) as info:
        read_checkpoint(path, use_torch=use_torch)
    assert str(path) in str(info.value)
    assert "truncated" in str(info.value)


@pytest.mark.parametrize("protocol", [2, 4])
def test_truncated_legacy_checkpoint_at_every_byte(tmp_path, torch, protocol):
    state = {"w": torch.arange(6.0).reshape(2, 3), "n": torch.tensor(4)}
    good = tmp_path / "legacy.pth"
    torch.save(
        state,
        good,
        _use_new_zipfile_serialization=False,
        pickle_protocol=protocol,
    )
    assert_same(read_checkpoint(good, use_torch=False), as_numpy(torch, state))
    data, path = good.read_bytes(), tmp_path / "cut.pth"
    magic_end = data.index(LEGACY_MAGIC.to_bytes(10, "little")) + 10
    for n in range(len(data)):
        path.write_bytes(data[:n])
        with pytest.raises(CheckpointFormatError) as info:
            read_checkpoint(path, use_torch=False)
        message = str(info.value)
        assert str(path) in message, n
        # Legacy files are recognised by the magic number.
        assert n < magic_end or "truncated" in message, (n, message)


@pytest.mark.parametrize("use_torch", [False, None])
@pytest.mark.parametrize("fraction", [0.001, 0.5, 0.999])
def test_truncated_legacy_reference(
    tmp_path, hrnet_legacy, use_torch, fraction
):
    data = hrnet_legacy.read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointFormatError) as info:
        read_checkpoint(path, use_torch=use_torch)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("use_torch", [False, None])
def test_random_bytes(tmp_path, use_torch):
    path = tmp_path / "noise.pth"
    rng = np.random.default_rng(0)
    path.write_bytes(b"NOISE" + rng.bytes(4096))
    with pytest.raises(CheckpointFormatError, match="not a|neither") as info:
        read_checkpoint(path, use_torch=use_torch)
    assert str(path) in str(info.value)


def test_zip_without_data_pkl(tmp_path):
    path = tmp_path / "other.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointFormatError, match="data.pkl") as info:
        read_checkpoint(path, use_torch=False)
    assert str(path) in str(info.value)


def test_storage_shorter_than_tensor(tmp_path, torch):
    good = tmp_path / "good.pth"
    torch.save({"w": torch.arange(100.0)}, good)
    bad = tmp_path / "short.pth"
    # Rewrite the archive with the storage record cut to 10 bytes.
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            is_storage = "/data/" in info.filename
            dst.writestr(info.filename, data[:10] if is_storage else data)
    with pytest.raises(CheckpointFormatError, match="bytes") as info:
        read_checkpoint(bad, use_torch=False)
    assert str(bad) in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "nope.pth")


# npz and safetensors -------------------------------------------------------


def _sample_arrays():
    rng = np.random.default_rng(1)
    return {
        "a.weight": rng.standard_normal((3, 4)).astype(np.float32),
        "b.half": rng.standard_normal(5).astype(np.float16),
        "c.long": np.arange(6, dtype=np.int64).reshape(3, 2),
        "d.mask": np.array([True, False]),
        "e.scalar": np.array(7, dtype=np.int64),
        "f.empty": np.zeros((0, 2), np.float64),
        "g.bytes": np.array([1, 2, 255], np.uint8),
    }


def test_safetensors_round_trip(tmp_path):
    arrays = _sample_arrays()
    path = tmp_path / "w.safetensors"
    write_safetensors(path, arrays)
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    assert header_len % 8 == 0
    assert_same(read_checkpoint(path), dict(sorted(arrays.items())))


def test_safetensors_truncated(tmp_path):
    path = tmp_path / "w.safetensors"
    write_safetensors(path, _sample_arrays())
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(CheckpointFormatError) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)


def test_safetensors_read_by_torch_layout(tmp_path, torch):
    # Cross-check bfloat16 decoding against torch on a hand-made header.
    values = torch.randn(5).bfloat16()
    raw = values.view(torch.int16).numpy().tobytes()
    header = b'{"x":{"dtype":"BF16","shape":[5],"data_offsets":[0,10]}}'
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + raw)
    assert_same(read_checkpoint(path), {"x": values.float().numpy()})


def test_npz_round_trip(tmp_path):
    arrays = _sample_arrays()
    path = tmp_path / "w.npz"
    np.savez(path, **arrays)
    assert_same(read_checkpoint(path), arrays)


def test_npz_with_objects_is_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointFormatError, match="obj.npz"):
        read_checkpoint(path)
