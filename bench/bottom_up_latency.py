"""Bottom-up (HigherHRNet-W32, AE hourglass) latency, and where bottom-up
and top-down pay as the number of people N grows.

One process per Keras backend (TensorFlow graph, JAX jit, PyTorch eager).
In each: forward passes timed in turns (round-robin, so load changes hit
all alike), all with the official flip test: batch 2 (image and mirror)
at 512x512 for the bottom-up networks, HRNet-W32 at 256x192 at batch 2N
(N person crops and their mirrors) for top-down; then decode + grouping
(`bottom_up_grouping.measure`, synthetic maps with N people, compiled as
`predict_image_bottom_up` runs it). Prints tables; `--write` also
updates BENCHMARKS.md.

    python bench/bottom_up_latency.py [--write] [--runs 5]
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
from omnipose_latency import MODE

BOTTOM_UP = (
    ("higherhrnet_w32", "HigherHRNet-W32"),
    ("hourglass_ae", "AE hourglass"),
)
TOP_DOWN = "hrnet_w32"
PEOPLE = (1, 5, 20, 50)
# Which grouping protocol each network's official test uses.
PROTOCOL = {"higherhrnet_w32": True, "hourglass_ae": False}


def _runner(model, backend):
    """callable(x) running one inference (outputs to NumPy), as
    hrnet_latency's runners do, for models returning a list."""
    if backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x: model(x, training=False), jit_compile=False)
        return lambda x: [o.numpy() for o in fn(x)]
    if backend == "jax":
        import jax

        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        fn = jax.jit(
            lambda x: model.stateless_call(tv, ntv, x, training=False)[0]
        )
        return lambda x: [np.asarray(o) for o in fn(x)]
    import torch

    def eager(x):
        with torch.no_grad():
            return [o.cpu().numpy() for o in model(x, training=False)]

    return eager


def worker(backend, runs, names):
    from bottom_up_grouping import measure

    from kerapose import zoo
    from kerapose.utils import count_macs

    entries = []  # (model name, batch, fn, x, macs per image, times)
    for name in names:
        model = zoo.load(name, compile=False)
        macs = count_macs(model)
        fn = _runner(model, backend)
        top_down = name == names[-1]
        for batch in [2 * n for n in PEOPLE] if top_down else (2,):
            x = (
                np.random.default_rng(0)
                .normal(size=(batch, *model.input_shape[1:]))
                .astype("float32")
            )
            if backend == "torch":
                import torch

                x = torch.from_numpy(x)
            fn(x)
            fn(x)  # warm-up: tracing, compilation, allocator
            entries.append((name, batch, fn, x, macs, []))
    for _ in range(runs):
        for _, _, fn, x, _, times in entries:
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
    forward = [
        {
            "backend": backend,
            "model": name,
            "batch": batch,
            "gmacs": macs / 1e9,
            "ms": statistics.median(times) * 1e3,
        }
        for name, batch, _, _, macs, times in entries
    ]
    grouping = [{**r, "backend": backend} for r in measure(PEOPLE, runs)]
    print(json.dumps({"forward": forward, "grouping": grouping}))


def run_workers(runs, models):
    import subprocess

    result = {"forward": [], "grouping": []}
    for backend in MODE:
        env = {**os.environ, "KERAS_BACKEND": backend}
        command = [sys.executable, __file__, "--worker", backend]
        command += ["--models", models]
        out = subprocess.run(
            command + ["--runs", str(runs)],
            env=env,
            capture_output=True,
            text=True,
        )
        if out.returncode:
            print(out.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"{backend} worker failed")
        rows = json.loads(out.stdout.strip().splitlines()[-1])
        for key in result:
            result[key] += rows[key]
    return result


def tables(result, runs):
    from bottom_up_grouping import table

    fwd = {(r["backend"], r["model"], r["batch"]): r for r in result["forward"]}
    grp = {
        (r["backend"], r["project"], r["people"]): r["decode_s"] + r["group_s"]
        for r in result["grouping"]
    }
    lines = [
        "Forward pass with the flip test, batch 2 (an image and its "
        "mirror) at 512x512 (HRNet-W32: one 256x192 crop and its mirror), "
        f"median of {runs} runs after two warm-up calls:",
        "",
        "| backend | mode | model | GMACs / image | ms |",
        "|---|---|---|---|---|",
    ]
    labels = dict(BOTTOM_UP)
    for backend in MODE:
        for name in [n for n, _ in BOTTOM_UP] + [TOP_DOWN]:
            r = fwd[(backend, name, 2)]
            lines.append(
                f"| {backend} | {MODE[backend]} | "
                f"{labels.get(name, 'HRNet-W32 (256x192)')} (`{name}`) "
                f"| {r['gmacs']:.2f} | {r['ms']:.0f} |"
            )
    lines += [
        "",
        "Decode + grouping time per image (`bench/bottom_up_grouping.py`'s "
        "synthetic maps with N people, flip test, median of "
        f"{runs} runs), on each backend (decode is keras.ops compiled by "
        "Keras' predict loop as `predict_image_bottom_up` runs it: "
        "tf.function, jax.jit, eager on PyTorch; grouping NumPy/SciPy):",
        "",
        table(result["grouping"]),
        "",
        "Where each pays, one image with N people, ms, flip test on both "
        "sides: bottom-up = one forward (batch 2, 512x512) + decode + "
        "grouping of its official protocol (HigherHRNet on maps projected "
        "to 512x512, AE on the 128x128 maps); top-down = HRNet-W32 256x192 "
        "on the N crops and their mirrors in one batch (forward only: the "
        "person detector and the per-crop decode are not counted). "
        "'decode share' is decode + grouping over the bottom-up forward.",
        "",
        "| backend | N | HigherHRNet-W32 | decode share | AE hourglass "
        "| decode share | top-down HRNet-W32 (N crops) |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend in MODE:
        for n in PEOPLE:
            cells = []
            for name, _ in BOTTOM_UP:
                forward = fwd[(backend, name, 2)]["ms"]
                post = grp[(backend, PROTOCOL[name], n)] * 1e3
                cells += [
                    f"{forward + post:.0f}",
                    f"{100 * post / forward:.1f}%",
                ]
            top = fwd[(backend, TOP_DOWN, 2 * n)]["ms"]
            lines.append(
                f"| {backend} | {n} | {' | '.join(cells)} | {top:.0f} |"
            )
    return "\n".join(lines + [""] + notes(fwd, grp))


def notes(fwd, grp):
    """Decode share range and the break-even people count, from the
    figures above: where one bottom-up pass costs as much as N top-down
    crop pairs (per-pair cost taken at the largest N)."""
    most = PEOPLE[-1]
    out = ["Read from the tables above:"]
    for name, label in BOTTOM_UP:
        shares = [
            grp[(b, PROTOCOL[name], n)] * 1e3 / fwd[(b, name, 2)]["ms"]
            for b in MODE
            for n in PEOPLE
        ]
        even = []
        for b in MODE:
            pair = fwd[(b, TOP_DOWN, 2 * most)]["ms"] / most
            total = (
                fwd[(b, name, 2)]["ms"] + grp[(b, PROTOCOL[name], most)] * 1e3
            )
            even.append(f"{b} {total / pair:.0f}")
        out.append(
            f"- {label}: decode + grouping is {100 * min(shares):.1f}-"
            f"{100 * max(shares):.1f}% of its forward pass for 1 to {most} "
            "people, flat in N; it costs as much as top-down HRNet-W32 on "
            f"about N people, N = {', '.join(even)} (detector not counted)."
        )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--worker", choices=sorted(MODE))
    # The last is the top-down model (timed at batch N); for quick checks.
    parser.add_argument(
        "--models", default=",".join([n for n, _ in BOTTOM_UP] + [TOP_DOWN])
    )
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.runs, args.models.split(","))
    load = open("/proc/loadavg").read().split()[:3]
    result = run_workers(args.runs, args.models)
    load_after = open("/proc/loadavg").read().split()[:3]
    text = (
        f"Load average (1, 5, 15 min) {' '.join(load)} before and "
        f"{' '.join(load_after)} after the run (2 cores; above 0.5 means "
        "something else ran beside it and absolute times are inflated; the "
        "ratios within one backend, same process and turns, hold better)."
        "\n\n" + tables(result, args.runs)
    )
    print(text)
    if args.write:
        from report import invocation
        from report import write_section

        write_section(
            "Bottom-up latency and decode cost vs top-down (CPU)",
            text,
            invocation(),
        )


if __name__ == "__main__":
    main()
