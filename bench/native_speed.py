"""kerapose on each Keras backend against native PyTorch eager, same weights.

The native side is a plain `torch.nn` model of each architecture
(`bench/native/`, loading the official state-dict layout); its random
weights (BatchNorm statistics randomised) are saved once and converted
into the kerapose model by the official-checkpoint converters, so both
sides compute the same function (the max |diff| column checks it).

Every framework runs in its own process, in alternating order over
`--rounds` rounds; a figure is the median over runs of the fastest round.
Rows: batch 1 and batch 8 inference, and one training step (batch 8, Adam,
MSE on every output) for the top-down models. kerapose inference is
`FastForward` (the default of the pipeline); on PyTorch the plain eager
`model(x)` is shown too.

    python bench/native_speed.py [--write] [--rounds 2] [--models ...]
        [--no-train]
    python bench/native_speed.py --profile   # where PyTorch eager time goes
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# name -> (native module, input (H, W), batches, train step, converter)
MODELS = {
    "hrnet_w32": ("hrnet", (256, 192), (1, 8), True, "convert_hrnet"),
    "omnipose_lite": ("omnipose", (256, 192), (1, 8), True, "convert_omnipose"),
    "rsn_18": ("rsn", (256, 192), (1, 8), True, "convert_rsn"),
    "higherhrnet_w32": (
        "higherhrnet",
        (512, 512),
        (1,),
        False,
        "convert_higherhrnet",
    ),
    "hourglass_ae": ("hourglass", (512, 512), (1,), False, "convert_hourglass"),
    "yolo_pose_s6": ("yolo_pose", (640, 640), (1,), False, "convert_yolo_pose"),
}
FRAMEWORKS = ("native", "tensorflow", "jax", "torch")
INFER_RUNS = 10
NO_TRAIN = False
TRAIN_RUNS = 5


def _median_time(fn, runs, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _inputs(name, batch):
    h, w = MODELS[name][1]
    rng = np.random.default_rng(batch)
    return rng.normal(size=(batch, 3, h, w)).astype("float32")


def _randomise_batchnorm(model, seed):
    import torch

    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)


def _native_model(name):
    import importlib

    module = importlib.import_module(f"bench.native.{MODELS[name][0]}")
    if name.startswith("hourglass"):  # NCHW like the others, no permute
        return module.full_model(name, nhwc_input=False)
    return module.full_model(name)


def _as_list(out):
    if isinstance(out, (list, tuple)):
        return list(out)
    if hasattr(out, "unbind") and out.ndim == 5:  # native hourglass stacks
        return list(out.unbind(1))
    return [out]


def prepare(workdir, names):
    """Saves each native model's weights and its batch-1 output."""
    import torch

    torch.manual_seed(0)
    for name in names:
        model = _native_model(name).eval()
        with torch.no_grad():
            _randomise_batchnorm(model, 1)
        torch.save(model.state_dict(), workdir / f"{name}.pth")
        if name.startswith("yolo"):
            continue  # row order differs; the parity tests cover it
        with torch.no_grad():
            out = _as_list(model(torch.from_numpy(_inputs(name, 1))))
        np.savez(
            workdir / f"{name}.out.npz",
            *[o.numpy().transpose(0, 2, 3, 1) for o in out],
        )


def _native_worker(workdir, names):
    import torch

    rows = []
    for name in names:
        model = _native_model(name)
        model.load_state_dict(torch.load(workdir / f"{name}.pth"))
        model.eval()
        batches, train = MODELS[name][2], MODELS[name][3]
        for batch in batches:
            x = torch.from_numpy(_inputs(name, batch))
            with torch.no_grad():
                ms = _median_time(lambda: model(x), INFER_RUNS)
            rows.append((name, f"infer b{batch}", "eager", ms))
        if train:
            model.train()
            x = torch.from_numpy(_inputs(name, 8))
            targets = [torch.randn_like(o) for o in _as_list(model(x))]
            opt = torch.optim.Adam(model.parameters(), 1e-3)

            def step():
                opt.zero_grad()
                outs = _as_list(model(x))
                loss = sum(
                    torch.nn.functional.mse_loss(o, t)
                    for o, t in zip(outs, targets)
                )
                loss.backward()
                opt.step()

            rows.append(
                (name, "train b8", "eager", _median_time(step, TRAIN_RUNS))
            )
    return rows


def _kerapose_model(workdir, name):
    import kerapose.convert as convert
    from kerapose import zoo

    model = zoo.load(name, compile=False)
    options = {"input_channels": "rgb"} if name.startswith("rsn") else {}
    report = getattr(convert, MODELS[name][4])(
        model, str(workdir / f"{name}.pth"), **options
    )
    if not report.ok:
        raise SystemExit(f"{name}: conversion failed: {report}")
    return model


def _kerapose_worker(workdir, names, backend):
    import keras

    from kerapose.inference import FastForward

    rows = []
    for name in names:
        model = _kerapose_model(workdir, name)
        forward = FastForward(model)
        reference = workdir / f"{name}.out.npz"
        if reference.exists():
            x = _inputs(name, 1).transpose(0, 2, 3, 1).copy()
            outs = _as_list(forward(x))
            if name.startswith("rsn"):
                outs = [outs[0][:, -1]]
            ref = np.load(reference)
            diff = max(
                float(np.abs(o - ref[f"arr_{i}"]).max())
                for i, o in enumerate(outs)
            )
            rows.append((name, "max |diff|", "FastForward", diff))
        for batch in MODELS[name][2]:
            x = _inputs(name, batch).transpose(0, 2, 3, 1).copy()
            ms = _median_time(lambda: forward(x), INFER_RUNS)
            rows.append((name, f"infer b{batch}", "FastForward", ms))
            if backend == "torch":
                import torch

                xt = torch.from_numpy(x)
                with torch.no_grad():
                    ms = _median_time(
                        lambda: model(xt, training=False), INFER_RUNS
                    )
                rows.append((name, f"infer b{batch}", "eager", ms))
        if MODELS[name][3]:
            x = _inputs(name, 8).transpose(0, 2, 3, 1).copy()
            y = keras.tree.map_structure(
                lambda t: (
                    np.random.default_rng(0)
                    .normal(size=t.shape)
                    .astype("float32")
                ),
                model.compute_output_spec(keras.KerasTensor(x.shape)),
            )
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
            ms = _median_time(
                lambda: model.train_on_batch(x, y), TRAIN_RUNS, warmup=2
            )
            rows.append((name, "train b8", "train_on_batch", ms))
    return rows


def worker(framework, workdir, names):
    workdir = Path(workdir)
    start = time.perf_counter()
    if framework == "prepare":
        prepare(workdir, names)
        rows = []
    elif framework == "native":
        rows = _native_worker(workdir, names)
    else:
        rows = _kerapose_worker(workdir, names, framework)
    print(f"{framework}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(json.dumps(rows))


def _run(framework, workdir, names, script=__file__):
    """JSON from `script --worker framework workdir`, in its own process
    with the framework's Keras backend (PyTorch for native and prepare)."""
    env = {**os.environ, "KERAS_BACKEND": framework}
    if framework in ("native", "prepare"):
        env["KERAS_BACKEND"] = "torch"
    out = subprocess.run(
        [sys.executable, script, "--worker", framework, str(workdir)]
        + ["--models", *names]
        + (["--no-train"] if NO_TRAIN else []),
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{framework} worker failed")
    print(out.stderr.strip().splitlines()[-1], file=sys.stderr, flush=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(results, names):
    """Markdown: one row per model and measurement, ms per framework."""
    best = {}
    for name, what, how, value in results:
        key = (name, what, how)
        best[key] = min(best.get(key, value), value)
    lines = [
        "| model | measurement | native PyTorch eager | TensorFlow | JAX "
        "| PyTorch backend | PyTorch backend, plain eager |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        for what in ("infer b1", "infer b8", "train b8"):
            native = best.get((name, what, "eager|native"))
            if native is None:
                continue
            how = (
                "train_on_batch" if what.startswith("train") else "FastForward"
            )
            cells = []
            for fw in ("tensorflow", "jax", "torch"):
                ms = best.get((name, what, f"{how}|{fw}"))
                cells.append("-" if ms is None else _cell(ms, native))
            eager = best.get((name, what, "eager|torch"))
            cells.append("-" if eager is None else _cell(eager, native))
            lines.append(
                f"| {name} | {what} | {native:.0f} ms | "
                + " | ".join(cells)
                + " |"
            )
        diffs = [
            f"{fw} {best[(name, 'max |diff|', f'FastForward|{fw}')]:.1e}"
            for fw in ("tensorflow", "jax", "torch")
            if (name, "max |diff|", f"FastForward|{fw}") in best
        ]
        if diffs:
            lines.append(
                f"| {name} | max abs diff to native | - | "
                + " | ".join(d.split()[1] for d in diffs)
                + " | - |"
            )
    return "\n".join(lines)


def _cell(ms, native):
    return f"{ms:.0f} ms ({ms / native:.2f}x)"


def profile(name="hrnet_w32"):
    """Self-time of PyTorch operators in one eager and one FastForward pass,
    grouped; the rest of the wall time is Python."""
    script = f"""
import os, time, json, numpy as np, torch
from torch.profiler import profile as prof, ProfilerActivity
from kerapose import zoo
from kerapose.inference import FastForward
m = zoo.load({name!r}, compile=False)
x = np.random.default_rng(0).normal(size=(1,) + m.input_shape[1:])
x = x.astype("float32")
xt = torch.from_numpy(x)
ff = FastForward(m)
out = {{}}
for label, fn in (("eager", lambda: m(xt, training=False)),
                  ("FastForward", lambda: ff(x))):
    with torch.no_grad():
        for _ in range(3): fn()
        walls = []
        for _ in range(5):
            s = time.perf_counter(); fn(); walls.append(time.perf_counter() - s)
        with prof(activities=[ProfilerActivity.CPU]) as p:
            fn()
    groups = {{}}
    for e in p.key_averages():
        n = e.key
        g = ("convolution" if "conv" in n else
             "layout copies" if n in ("aten::copy_", "aten::clone") else
             "elementwise (BatchNorm, ReLU, add)" if n in (
                 "aten::sub", "aten::mul", "aten::mul_", "aten::add",
                 "aten::add_", "aten::rsqrt", "aten::rsqrt_", "aten::relu",
                 "aten::clamp_min", "aten::subtract", "aten::_to_copy")
             else "other operators")
        groups[g] = groups.get(g, 0) + e.self_cpu_time_total / 1e3
    out[label] = {{"wall": sorted(walls)[2] * 1e3, "groups": groups}}
print(json.dumps(out))
"""
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    res = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True
    )
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    data = json.loads(res.stdout.strip().splitlines()[-1])
    order = [
        "convolution",
        "layout copies",
        "elementwise (BatchNorm, ReLU, add)",
        "other operators",
    ]
    lines = [
        f"{name}, batch 1, PyTorch backend: operator self-time (profiler) "
        "and the rest of the wall time (Python, Keras layer calls):",
        "",
        "| | " + " | ".join(order) + " | Python and dispatch | wall |",
        "|---|" + "---|" * (len(order) + 2),
    ]
    for label, d in data.items():
        lines.append(f"| {label} | " + profile_cells(d, order, " ms") + " |")
    return "\n".join(lines)


def profile_cells(profiled, groups, unit=""):
    """Markdown cells: each group's operator time, the rest of the wall
    time (Python and dispatch), and the wall time, in ms."""
    ops = [profiled["groups"].get(g, 0.0) for g in groups]
    rest = max(profiled["wall"] - sum(ops), 0.0)
    return " | ".join(f"{v:.0f}{unit}" for v in [*ops, rest, profiled["wall"]])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--no-train",
        action="store_true",
        help="inference rows only (the JAX and TensorFlow training-step "
        "compiles take minutes per model)",
    )
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "DIR"))
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        raise SystemExit(f"unknown models {unknown}; known: {list(MODELS)}")
    if args.no_train:
        global NO_TRAIN
        NO_TRAIN = True
        for name in args.models:
            MODELS[name] = MODELS[name][:3] + (False,) + MODELS[name][4:]
    if args.worker:
        return worker(args.worker[0], args.worker[1], args.models)
    if args.profile:
        text = profile()
        print(text)
        if args.write:
            from report import invocation
            from report import write_section

            write_section(
                "Where PyTorch-backend time goes (CPU)", text, invocation()
            )
        return None

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        _run("prepare", tmp, args.models)
        for r in range(args.rounds):
            order = FRAMEWORKS[r % 4 :] + FRAMEWORKS[: r % 4]
            for fw in order:
                print(f"round {r + 1}: {fw}", file=sys.stderr, flush=True)
                for name, what, how, value in _run(fw, tmp, args.models):
                    results.append((name, what, f"{how}|{fw}", value))
    text = (
        "Milliseconds per batch (median of "
        f"{INFER_RUNS} inference / {TRAIN_RUNS} training runs, best of "
        f"{args.rounds} alternating rounds, each framework in its own "
        "process); in brackets kerapose / native PyTorch eager (lower is "
        "better).\n\n" + _table(results, args.models)
    )
    print(text)
    if args.write:
        from report import invocation
        from report import write_section

        write_section(
            "kerapose vs native PyTorch eager (CPU)", text, invocation()
        )
    return None


if __name__ == "__main__":
    main()
