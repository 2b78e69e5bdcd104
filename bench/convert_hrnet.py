"""Cost of converting a full-size official HRNet-W48 checkpoint.

Builds an official-format `PoseHighResolutionNet` W48 state dict with random
weights (keys and shapes derived from the kerapose model through
`hrnet_key_map`, `num_batches_tracked` buffers included), saves it with
`torch.save`, then measures in a fresh subprocess per run, so every peak
RSS belongs to one run:

- baseline: import kerapose and build the W48 model, nothing else;
- read: `read_checkpoint(path, use_torch=False)` (torch-free reader);
- convert: `convert_checkpoint(model, path)` into a built W48 model, then
  `zoo.save_weights(model, "....weights.h5")`; once with the default
  reader (torch when installed) and once with `import torch` blocked.

The parent process never imports kerapose: Linux carries a parent's peak
RSS over into its children's `ru_maxrss`, so it must stay small.

    python bench/convert_hrnet.py [--write] [--runs 3] [--workdir DIR]
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

MODEL = "hrnet_w48"
EXPECTED_PARAMS = 63_595_745  # official W48 256x192, buffers excluded
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
_TITLE = "Checkpoint conversion (HRNet-W48)"


def _peak_rss_mib():
    """`ru_maxrss` and, on Linux, this process image's `VmHWM`, in MiB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    peak = peak / 2**20 if sys.platform == "darwin" else peak / 2**10
    hwm = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 2**10
    except OSError:
        pass
    return peak, hwm


def _block_torch():
    """Makes `import torch` fail in this process (unless already loaded)."""
    if "torch" not in sys.modules:
        sys.modules["torch"] = None
    return sys.modules["torch"] is None


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
    import numpy as np

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
    import numpy as np

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
    return sum(v.size for k, v in state.items() if not k.endswith(_BUFFERS))


def save_checkpoint(state, metadata, directory):
    """Writes `state` with torch.save, or as .safetensors without torch."""
    try:
        import torch
    except ImportError:
        from kerapose.convert.checkpoint_io import write_safetensors

        print(
            "torch is not installed: writing .safetensors instead of .pth, "
            "so the read row measures the safetensors reader, not the "
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


# --------------------------------------------------------------- workers --


def worker(kind, checkpoint, out_dir):
    """One job in this (fresh) process; prints a JSON dict last on stdout."""
    result = {"kind": kind}
    if kind == "make":
        state, metadata = official_state_dict()
        result["params"] = count_params(state)
        result["tensors"] = len(state)
        result["bn"] = sum(k.endswith(".num_batches_tracked") for k in state)
        result["path"] = str(save_checkpoint(state, metadata, out_dir))
        print(json.dumps(result))
        return
    import keras

    backend = keras.backend.backend()
    result["backend"] = backend
    if kind in ("read", "convert_notorch"):
        # kerapose imports keras, which needs torch on the torch backend.
        if backend == "torch" and kind == "convert_notorch":
            raise SystemExit("the torch backend cannot run without torch")
        result["torch_blocked"] = backend != "torch" and _block_torch()
    if kind == "read":
        from kerapose.convert.checkpoint_io import read_checkpoint

        result["before_mib"] = _peak_rss_mib()[0]
        start = time.perf_counter()
        state = read_checkpoint(checkpoint, use_torch=False)
        result["seconds"] = time.perf_counter() - start
        result["tensors"] = len(state)
    else:
        from kerapose import zoo
        from kerapose.convert import convert_checkpoint

        model = zoo.load(MODEL, compile=False)
        result["before_mib"] = _peak_rss_mib()[0]
        if kind != "baseline":
            start = time.perf_counter()
            report = convert_checkpoint(model, checkpoint)
            mid = time.perf_counter()
            weights = Path(out_dir) / f"{MODEL}_{kind}.weights.h5"
            zoo.save_weights(model, weights)
            end = time.perf_counter()
            result["convert_s"] = mid - start
            result["save_s"] = end - mid
            result["seconds"] = end - start
            result["loaded"] = len(report.loaded)
            result["ignored"] = len(report.ignored)
            result["weights_file"] = str(weights)
    result["torch_loaded"] = sys.modules.get("torch") is not None
    result["peak_mib"], result["hwm_mib"] = _peak_rss_mib()
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


# ------------------------------------------------------------------ main --


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


def table(results, made, checkpoint, runs):
    base = results["baseline"]
    base_peak = _median(base, "peak_mib")
    convert = results["convert"]
    h5 = Path(convert[0]["weights_file"]).stat().st_size
    fmt = checkpoint.suffix.lstrip(".")
    lines = [
        "Random-weight official-format HRNet-W48 state dict: "
        f"{made['tensors']} tensors ({made['bn']} of them "
        f"`num_batches_tracked`), {made['params']:,} parameters excluding "
        f"buffers. Keras backend: {base[0]['backend']}. Each row is a fresh "
        f"subprocess; median of {runs} runs (min-max in brackets). Peak RSS "
        "is `ru_maxrss`; 'before' is the peak just before the timed step "
        "(imports and, for conversion, the built model); the baseline "
        "process only imports kerapose and builds the model.",
        "",
        "| step | wall s | peak RSS MiB | before MiB | peak - before "
        "| peak - baseline |",
        "|---|---|---|---|---|---|",
        "| baseline: import kerapose + build W48 | - "
        f"| {_spread(base, 'peak_mib', '.0f')} | - | - | - |",
    ]
    rows = [
        ("read", f"read `.{fmt}` without torch (`use_torch=False`)"),
        ("convert", "`convert_checkpoint` + `save_weights`, default reader"),
        ("convert_notorch", "same, `import torch` blocked"),
    ]
    for kind, label in rows:
        if kind not in results:
            continue
        rs = results[kind]
        peak = _median(rs, "peak_mib")
        over_base = "-" if kind == "read" else f"{peak - base_peak:+.0f}"
        own = statistics.median(r["peak_mib"] - r["before_mib"] for r in rs)
        lines.append(
            f"| {label} | {_spread(rs, 'seconds', '.2f')} "
            f"| {_spread(rs, 'peak_mib', '.0f')} "
            f"| {_median(rs, 'before_mib'):.0f} | {own:+.0f} | {over_base} |"
        )
    lines += ["", "Conversion split (median):"]
    for kind in ("convert", "convert_notorch"):
        if kind in results:
            rs = results[kind]
            torch = "imported" if rs[0]["torch_loaded"] else "not imported"
            lines.append(
                f"- {kind}: read + assign {_median(rs, 'convert_s'):.2f} s, "
                f"save_weights {_median(rs, 'save_s'):.2f} s; torch {torch}."
            )
    read = results["read"][0]
    hwm = [r["hwm_mib"] for rs in results.values() for r in rs]
    peaks = [r["peak_mib"] for rs in results.values() for r in rs]
    if all(h is not None for h in hwm):
        gap = max(abs(p - h) for p, h in zip(peaks, hwm))
        lines.append(
            f"- `ru_maxrss` agrees with `/proc/self/status` VmHWM to within "
            f"{gap:.0f} MiB in every run."
        )
    lines += [
        f"- the read step returned {read['tensors']} tensors; torch "
        f"{'blocked' if read['torch_blocked'] else 'importable'} there.",
        "",
        "| file | MiB |",
        "|---|---|",
        f"| `{checkpoint.name}` | {checkpoint.stat().st_size / 2**20:.1f} |",
        f"| `{MODEL}.weights.h5` | {h5 / 2**20:.1f} |",
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
        made = _run_worker("make", "-", out_dir)
        if made["params"] != EXPECTED_PARAMS:
            raise SystemExit(
                f"state dict has {made['params']:,} parameters, expected "
                f"{EXPECTED_PARAMS:,}"
            )
        checkpoint = Path(made["path"])
        with_torch = checkpoint.suffix == ".pth"
        results = measure(checkpoint, out_dir, args.runs, with_torch)
        text = table(results, made, checkpoint, args.runs)
    print(text)
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import invocation
        from report import write_section

        write_section(_TITLE, text, invocation())


if __name__ == "__main__":
    main()
