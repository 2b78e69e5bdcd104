"""OmniPose and OmniPose-Lite inference latency next to HRNet-W32.

One process per Keras backend (TensorFlow graph, JAX jit, PyTorch eager),
batch 1, each model at its input size. The models are timed in turns
(round-robin), so a load change on a shared machine hits all of them alike;
each row also gives the ratio to HRNet-W32 in the same process. Prints a
table; `--write` also updates BENCHMARKS.md.

    python bench/omnipose_latency.py [--write] [--runs 5]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from hrnet_latency import _runners

# (zoo name, label); the first is the reference of the ratios.
MODELS = (
    ("hrnet_w32.coco_256x192", "HRNet-W32"),
    ("omnipose_lite.coco_256x192", "OmniPose-Lite"),
    ("omnipose.coco_256x192", "OmniPose (W48)"),
    ("omnipose.coco_384x288", "OmniPose (W48)"),
)
MODE = {"tensorflow": "graph", "jax": "jit", "torch": "eager"}


def worker(backend, runs, names):
    from kerapose import zoo
    from kerapose.utils import count_macs

    entries = []
    for name in names:
        model = zoo.load(name, compile=False)
        x = np.random.default_rng(0).normal(size=(1, *model.input_shape[1:]))
        x = x.astype("float32")
        if backend == "torch":
            import torch

            x = torch.from_numpy(x)
        fn = _runners(model, backend)[MODE[backend]]
        fn(x)
        fn(x)  # warm-up: tracing, compilation, allocator
        entries.append((name, model, x, fn, count_macs(model), []))
    for _ in range(runs):
        for _, _, x, fn, _, times in entries:
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
    rows = [
        {
            "backend": backend,
            "mode": MODE[backend],
            "model": name,
            "input": "x".join(str(s) for s in model.input_shape[1:3]),
            "gmacs": macs / 1e9,
            "ms": statistics.median(times) * 1e3,
        }
        for name, model, _, _, macs, times in entries
    ]
    print(json.dumps(rows))


def run_workers(script, runs, names):
    """Runs `script --worker <backend>` once per backend, in a fresh
    process each (one Keras backend per process); returns all rows."""
    rows = []
    for backend in MODE:
        env = {**os.environ, "KERAS_BACKEND": backend}
        command = [sys.executable, script, "--worker", backend]
        command += ["--runs", str(runs), "--models", ",".join(names)]
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"{backend} worker failed")
        rows += json.loads(out.stdout.strip().splitlines()[-1])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--models",
        default=",".join(name for name, _ in MODELS),
        help="comma-separated zoo names; the first is the ratio reference",
    )
    parser.add_argument("--worker", choices=sorted(MODE))
    args = parser.parse_args()
    names = args.models.split(",")
    if args.worker:
        return worker(args.worker, args.runs, names)

    labels = dict(MODELS)
    rows = run_workers(__file__, args.runs, names)

    lines = [
        f"Batch 1, median of {args.runs} runs after two warm-up calls; the "
        "models were timed in turns in one process per backend, so the "
        "ratio to HRNet-W32 (same process, same turns) holds even when "
        "other jobs load the CPU.",
        "",
        "| backend | mode | model | input | GMACs | ms / image "
        "| vs HRNet-W32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend in MODE:
        ours = [r for r in rows if r["backend"] == backend]
        reference = ours[0]["ms"]
        for r in ours:
            label = labels.get(r["model"], r["model"])
            lines.append(
                f"| {backend} | {r['mode']} | {label} (`{r['model']}`) "
                f"| {r['input']} | {r['gmacs']:.3f} | {r['ms']:.0f} "
                f"| {r['ms'] / reference:.2f}x |"
            )
    text = "\n".join(lines)
    print(text)
    if args.write:
        from report import invocation
        from report import write_section

        write_section(
            "OmniPose and OmniPose-Lite inference latency (CPU)",
            text,
            invocation(),
        )


if __name__ == "__main__":
    main()
