"""HRNet-W32 256x192 inference latency on each Keras backend vs. CPU peak.

Each backend runs in its own process (Keras picks the backend at import).
Prints a table; `--write` also updates BENCHMARKS.md.

    python bench/hrnet_latency.py [--write] [--runs 10]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

MODEL = "hrnet_w32"


def _time(fn, x, runs):
    fn(x)
    fn(x)  # warm-up: tracing, compilation, allocator
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _runners(model, backend):
    """name -> callable(x) running one inference, for this backend."""
    if backend == "tensorflow":
        import tensorflow as tf

        def make(jit):
            fn = tf.function(
                lambda x: model(x, training=False), jit_compile=jit
            )
            return lambda x: fn(x).numpy()

        return {"graph": make(False), "xla": make(True)}
    if backend == "jax":
        import jax

        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        fn = jax.jit(
            lambda x: model.stateless_call(tv, ntv, x, training=False)[0]
        )
        return {"jit": lambda x: np.asarray(fn(x))}
    import torch

    def eager(x):
        with torch.no_grad():
            return model(x, training=False).cpu().numpy()

    return {"eager": eager}


def worker(backend, runs):
    from kerapose import zoo
    from kerapose.utils import count_macs

    model = zoo.load(MODEL, compile=False)
    macs = count_macs(model)
    results = []
    for batch in (1, 8):
        x = np.random.default_rng(0).normal(size=(batch, 256, 192, 3))
        x = x.astype("float32")
        if backend == "torch":
            import torch

            x = torch.from_numpy(x)
        for mode, fn in _runners(model, backend).items():
            seconds = _time(fn, x, runs)
            results.append(
                {
                    "backend": backend,
                    "mode": mode,
                    "batch": batch,
                    "ms": seconds * 1e3,
                    "gflops": 2 * macs * batch / seconds / 1e9,
                }
            )
    print(json.dumps(results))


def matmul_peak(n=4096, runs=5):
    """fp32 GFLOP/s of a large matmul (TensorFlow/oneDNN and NumPy)."""
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    mm = tf.function(lambda: tf.matmul(a, b))
    tf_time = _time(lambda _: mm().numpy(), None, runs)
    an, bn = a.numpy(), b.numpy()
    np_time = _time(lambda _: an @ bn, None, runs)
    flops = 2 * n**3
    return {"tensorflow": flops / tf_time / 1e9, "numpy": flops / np_time / 1e9}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--worker", choices=["tensorflow", "jax", "torch"])
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.runs)

    peak = matmul_peak()
    best_peak = max(peak.values())
    rows = []
    for backend in ("tensorflow", "jax", "torch"):
        env = {**os.environ, "KERAS_BACKEND": backend}
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                backend,
                "--runs",
                str(args.runs),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if out.returncode:
            print(out.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"{backend} worker failed")
        rows += json.loads(out.stdout.strip().splitlines()[-1])

    lines = [
        f"Matmul peak (fp32, 4096x4096): TensorFlow {peak['tensorflow']:.0f} "
        f"GFLOP/s, NumPy {peak['numpy']:.0f} GFLOP/s; the fraction below "
        f"uses {best_peak:.0f}.",
        "",
        "HRNet-W32 at 256x192 (7.645 GMACs per image), median of "
        f"{args.runs} runs after warm-up:",
        "",
        "| backend | mode | batch | ms / batch | ms / image | GFLOP/s "
        "| % of peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['mode']} | {r['batch']} | {r['ms']:.1f} "
            f"| {r['ms'] / r['batch']:.1f} | {r['gflops']:.0f} "
            f"| {100 * r['gflops'] / best_peak:.0f}% |"
        )
    text = "\n".join(lines)
    print(text)
    if args.write:
        from report import invocation
        from report import write_section

        write_section(
            "HRNet-W32 inference latency (CPU)",
            text,
            invocation(),
        )


if __name__ == "__main__":
    main()
