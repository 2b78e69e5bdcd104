"""Cost of converting a full-size official HRNet-W48 checkpoint.

Builds an official-format `PoseHighResolutionNet` W48 state dict with random
weights (keys and shapes derived from the kerapose model through
`hrnet_key_map`, `num_batches_tracked` buffers included), saves it with
`torch.save`, then measures in a fresh subprocess per run, so every peak
RSS belongs to one run:

- baseline: import kerapose and build the W48 model, nothing else;
- read: `read_checkpoint(path, use_torch=False)` (torch-free reader);
- convert: `convert_checkpoint(model, path)` into a built W48 model, then
  `zoo.save_weights(model, "....weights.h5")`.

Prints a markdown table; `--write` also updates BENCHMARKS.md.

    python bench/convert_hrnet.py [--write] [--runs 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

MODEL = "hrnet_w48"
EXPECTED_PARAMS = 63_595_745  # official W48 256x192, buffers excluded
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
_TITLE = "Checkpoint conversion (HRNet-W48)"
_COMMAND = "python bench/convert_hrnet.py --write"


def _peak_rss_mib():
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _block_torch():
    """Makes `import torch` fail in this process (unless already loaded)."""
    if "torch" not in sys.modules:
        sys.modules["torch"] = None
    return sys.modules["torch"] is None


# --------------------------------------------------------------- workers --


def worker(kind, checkpoint, out_dir):
    """One measurement; prints a JSON dict as the last line of stdout."""
    result = {"kind": kind}
    if kind == "read":
        import keras

        # kerapose imports keras, which needs torch on the torch backend.
        blocked = keras.backend.backend() != "torch" and _block_torch()
        from kerapose.convert.checkpoint_io import read_checkpoint

        result["before_mib"] = _peak_rss_mib()
        start = time.perf_counter()
        state = read_checkpoint(checkpoint, use_torch=False)
        result["seconds"] = time.perf_counter() - start
        result["tensors"] = len(state)
        result["torch_blocked"] = blocked
    else:
        import keras

        if kind == "convert_notorch":
            if keras.backend.backend() == "torch":
                raise SystemExit("the torch backend cannot run without torch")
            result["torch_blocked"] = _block_torch()
        from kerapose import zoo
        from kerapose.convert import convert_checkpoint

        model = zoo.load(MODEL, compile=False)
        result["backend"] = keras.backend.backend()
        result["before_mib"] = _peak_rss_mib()
        if kind != "baseline":
            start = time.perf_counter()
            report = convert_checkpoint(model, checkpoint)
            mid = time.perf_counter()
            weights = Path(out_dir) / f"{kind}.weights.h5"
            zoo.save_weights(model, weights)
            end = time.perf_counter()
            result["convert_s"] = mid - start
            result["save_s"] = end - mid
            result["seconds"] = end - start
            result["loaded"] = len(report.loaded)
            result["ignored"] = len(report.ignored)
            result["weights_file"] = str(weights)
    result["torch_loaded"] = sys.modules.get("torch") is not None
    result["peak_mib"] = _peak_rss_mib()
    print(json.dumps(result))


def _run_worker(kind, checkpoint, out_dir):
    env = {**os.environ}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cmd = [sys.executable, __file__, "--worker", kind, str(checkpoint)]
    out = subprocess.run(
        [*cmd, str(out_dir)], env=env, capture_output=True, text=True
    )
    if out.returncode:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{kind} worker failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------ checkpoint --


def _official_shape(keras_shape, transform):
    """Inverts the converter's layout transform on a shape."""
    if transform.__name__ == "conv_kernel":  # (kh, kw, I, O) -> (O, I, kh, kw)
        kh, kw, i, o = keras_shape
        return (o, i, kh, kw)
    if transform.__name__ == "identity":
        return tuple(keras_shape)
    raise ValueError(f"no inverse for transform {transform.__name__}")


def _random_tensor(rng, key, shape):
    leaf = key.rsplit(".", 1)[1]
    if leaf == "running_var" or (leaf == "weight" and len(shape) == 1):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    scale = 0.1 if len(shape) == 1 else 0.01
    return scale * rng.standard_normal(shape, dtype=np.float32)


def official_state_dict(seed=0):
    """Random W48 state dict in the official key order, plus its metadata.

    Returns:
        `(state, metadata)`: OrderedDict of official key -> numpy array, and
        the `_metadata` (module -> `{"version": n}`) that
        `nn.Module.state_dict()` attaches.
    """
    from kerapose import zoo
    from kerapose.convert.hrnet import hrnet_key_map

    model = zoo.load(MODEL, compile=False)
    rng = np.random.default_rng(seed)
    state = OrderedDict()
    for variable in model.weights:
        entry = hrnet_key_map(variable.path)
        if entry is None:
            raise SystemExit(f"no official key for {variable.path}")
        key, transform = entry
        shape = _official_shape(variable.shape, transform)
        state[key] = _random_tensor(rng, key, shape)
        if key.endswith(".running_var"):
            module = key[: -len(".running_var")]
            state[f"{module}.num_batches_tracked"] = np.array(
                rng.integers(1, 10**6), dtype=np.int64
            )
    metadata = OrderedDict([("", {"version": 1})])
    for key in state:
        parts = key.split(".")[:-1]
        for n in range(1, len(parts) + 1):
            metadata.setdefault(".".join(parts[:n]), {"version": 1})
        if key.endswith(".num_batches_tracked"):  # BatchNorm2d._version
            metadata[key.rsplit(".", 1)[0]] = {"version": 2}
    return state, metadata


def count_params(state):
    return sum(
        int(np.prod(v.shape))
        for k, v in state.items()
        if not k.endswith(_BUFFERS)
    )


def save_checkpoint(state, metadata, directory):
    """Writes `state` with torch.save, or as .safetensors without torch."""
    try:
        import torch
    except ImportError:
        from kerapose.convert.checkpoint_io import write_safetensors

        print(
            "torch is not installed: writing .safetensors instead of .pth, "
            "so the rows below measure the safetensors reader, not the "
            "torch-free .pth reader.",
            file=sys.stderr,
        )
        path = Path(directory) / "pose_hrnet_w48_random.safetensors"
        write_safetensors(path, state)
        return path
    tensors = OrderedDict((k, torch.from_numpy(v)) for k, v in state.items())
    tensors._metadata = metadata
    path = Path(directory) / "pose_hrnet_w48_random.pth"
    torch.save(tensors, path)
    return path


# ------------------------------------------------------------------ main --


def _mib(n_bytes):
    return n_bytes / 2**20


def _median(rows, field):
    return statistics.median(r[field] for r in rows)


def _spread(rows, field, fmt):
    values = sorted(r[field] for r in rows)
    if len(values) == 1:
        return format(values[0], fmt)
    mid = format(statistics.median(values), fmt)
    return f"{mid} ({format(values[0], fmt)}-{format(values[-1], fmt)})"


def measure(checkpoint, out_dir, runs, with_torch):
    kinds = ["baseline", "read", "convert"]
    if with_torch:
        kinds.append("convert_notorch")
    results = {kind: [] for kind in kinds}
    for run in range(runs):
        for kind in kinds:  # interleaved, so load drift hits every kind
            r = _run_worker(kind, checkpoint, out_dir)
            results[kind].append(r)
            print(
                f"run {run + 1}/{runs} {kind}: "
                f"{r.get('seconds', 0):.2f} s, peak {r['peak_mib']:.0f} MiB",
                file=sys.stderr,
            )
    return results


def table(results, checkpoint, state, runs):
    base = results["baseline"]
    base_peak = _median(base, "peak_mib")
    convert = results["convert"]
    h5 = Path(convert[0]["weights_file"]).stat().st_size
    fmt = checkpoint.suffix.lstrip(".")
    n_bn = sum(k.endswith(".num_batches_tracked") for k in state)
    lines = [
        f"Random-weight official-format HRNet-W48 state dict: {len(state)} "
        f"tensors ({n_bn} of them `num_batches_tracked`), "
        f"{count_params(state):,} parameters excluding buffers. Keras "
        f"backend: {base[0]['backend']}. Each row is a fresh subprocess; "
        f"median of {runs} runs (min-max in brackets). Peak RSS is "
        "`ru_maxrss`; 'before' is the peak just before the timed step "
        "(imports and, for conversion, the built model).",
        "",
        "| step | wall s | peak RSS MiB | before MiB | over baseline MiB |",
        "|---|---|---|---|---|",
        f"| baseline: import kerapose + build W48 | - "
        f"| {_spread(base, 'peak_mib', '.0f')} | - | - |",
    ]
    rows = [
        ("read", f"read `.{fmt}` without torch (`use_torch=False`)"),
        ("convert", "`convert_checkpoint` + `save_weights` (default reader)"),
        ("convert_notorch", "same, torch import blocked"),
    ]
    for kind, label in rows:
        if kind not in results:
            continue
        rs = results[kind]
        over = "-"
        if kind != "read":
            over = f"{_median(rs, 'peak_mib') - base_peak:+.0f}"
        lines.append(
            f"| {label} | {_spread(rs, 'seconds', '.2f')} "
            f"| {_spread(rs, 'peak_mib', '.0f')} "
            f"| {_median(rs, 'before_mib'):.0f} | {over} |"
        )
    split = (
        f"Conversion split (median): convert "
        f"{_median(convert, 'convert_s'):.2f} s, save "
        f"{_median(convert, 'save_s'):.2f} s; torch imported: "
        f"{convert[0]['torch_loaded']}."
    )
    read = results["read"][0]
    lines += [
        "",
        split,
        f"The read step loaded {read['tensors']} tensors with torch "
        f"{'blocked' if read['torch_blocked'] else 'importable'}.",
        "",
        "| file | MiB |",
        "|---|---|",
        f"| `{checkpoint.name}` | {_mib(checkpoint.stat().st_size):.1f} |",
        f"| `{MODEL}.weights.h5` | {_mib(h5):.1f} |",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", help="keep the files here")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.workdir or tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        state, metadata = official_state_dict()
        params = count_params(state)
        if params != EXPECTED_PARAMS:
            raise SystemExit(
                f"state dict has {params:,} parameters, expected "
                f"{EXPECTED_PARAMS:,}"
            )
        checkpoint = save_checkpoint(state, metadata, out_dir)
        with_torch = checkpoint.suffix == ".pth"
        results = measure(checkpoint, out_dir, args.runs, with_torch)
        text = table(results, checkpoint, state, args.runs)
    print(text)
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import write_section

        write_section(_TITLE, text, _COMMAND)


if __name__ == "__main__":
    main()
