"""Where one training step's time goes: kerapose on PyTorch and JAX against
native PyTorch eager (batch 8, Adam, MSE on every output; the models and
weights of `bench/native_speed.py`).

PyTorch (native and the kerapose backend): operator self-time from the
PyTorch profiler, grouped; the rest of the wall time is Python, autograd
and dispatch. JAX: the step as Keras compiles it (one XLA program), against
the same layers each compiled alone (forward + backward per operation of
the model's graph, summed by layer class), so that the table shows which
layers cost what and what the whole-network program adds.

Each framework runs in its own process.

    python bench/train_profile.py [--write] [--models hrnet_w32 ...]
        [--backends torch jax]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import native_speed as ns  # noqa: E402

BATCH = 8
TORCH_GROUPS = (
    "convolution forward",
    "convolution backward",
    "batch norm",
    "elementwise and reductions",
    "layout copies",
    "optimizer",
    "other operators",
)


def _torch_group(name):
    if "convolution_backward" in name:
        return "convolution backward"
    if "conv" in name:
        return "convolution forward"
    if "batch_norm" in name:
        return "batch norm"
    if "_foreach" in name or name in ("aten::addcdiv_", "aten::lerp_"):
        return "optimizer"
    if name in ("aten::copy_", "aten::clone", "aten::contiguous"):
        return "layout copies"
    elementwise = (
        "add", "sub", "mul", "div", "relu", "threshold", "sqrt", "rsqrt",
        "pow", "mean", "sum", "var", "square", "neg", "fill", "zero",
        "where", "clamp", "sigmoid", "exp", "max", "min",
    )  # fmt: skip
    short = name.split("::")[-1].rstrip("_")
    if any(short.startswith(e) for e in elementwise):
        return "elementwise and reductions"
    return "other operators"


def _profile_torch(step):
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    walls = []
    for _ in range(2):
        step()
    for _ in range(3):
        start = time.perf_counter()
        step()
        walls.append(time.perf_counter() - start)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    groups = dict.fromkeys(TORCH_GROUPS, 0.0)
    for event in prof.key_averages():
        groups[_torch_group(event.key)] += event.self_cpu_time_total / 1e3
    return {"wall": sorted(walls)[1] * 1e3, "groups": groups}


def _native(workdir, name):
    import torch

    model = ns._native_model(name)
    model.load_state_dict(torch.load(workdir / f"{name}.pth"))
    model.train()
    x = torch.from_numpy(ns._inputs(name, BATCH))
    targets = [torch.randn_like(o) for o in ns._as_list(model(x))]
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step():
        opt.zero_grad()
        outs = ns._as_list(model(x))
        loss = sum(
            torch.nn.functional.mse_loss(o, t) for o, t in zip(outs, targets)
        )
        loss.backward()
        opt.step()

    return _profile_torch(step)


def _kerapose_batch(model, name):
    import keras
    import numpy as np

    x = ns._inputs(name, BATCH).transpose(0, 2, 3, 1).copy()
    spec = model.compute_output_spec(keras.KerasTensor(x.shape))
    y = keras.tree.map_structure(
        lambda t: np.random.default_rng(0).normal(size=t.shape).astype("f4"),
        spec,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return x, y


def _kerapose_torch(workdir, name):
    model = ns._kerapose_model(workdir, name)
    x, y = _kerapose_batch(model, name)
    return _profile_torch(lambda: model.train_on_batch(x, y))


def _kerapose_jax(workdir, name):
    """Whole-step wall time, and forward + backward of each operation of
    the graph compiled on its own, summed by class."""
    import jax
    import keras

    from kerapose.inference.fast_forward import _is_graph

    model = ns._kerapose_model(workdir, name)
    x, y = _kerapose_batch(model, name)
    start = time.perf_counter()
    model.train_on_batch(x, y)
    compile_s = time.perf_counter() - start
    wall = ns._median_time(lambda: model.train_on_batch(x, y), 3, warmup=1)

    kinds = _xla_kinds(lambda: model.train_on_batch(x, y))
    costs = {}

    def timed(op, args, kwargs):
        # One program per (operation, shapes): forward and the backward of
        # a random cotangent; its run time is charged to the op's class.
        is_layer = isinstance(op, keras.layers.Layer)
        trainable = (
            [v.value for v in op.trainable_variables] if is_layer else []
        )
        frozen = (
            [v.value for v in op.non_trainable_variables] if is_layer else []
        )

        def forward(trainable, *a):
            if is_layer:
                extra = {"training": True} if op._call_has_training_arg else {}
                return op.stateless_call(
                    trainable, frozen, *a, **extra, **kwargs
                )[0]
            return op(*a, **kwargs)

        def both(trainable, *a):
            out, vjp = jax.vjp(forward, trainable, *a)
            cot = jax.tree_util.tree_map(jax.numpy.ones_like, out)
            return out, vjp(cot)

        try:
            jitted = jax.jit(both)
            out = jax.block_until_ready(jitted(trainable, *args))[0]
            fn = lambda: jitted(trainable, *args)  # noqa: E731
        except Exception:  # integer or non-differentiable operations
            plain = jax.jit(lambda *a: forward(trainable, *a))
            out = jax.block_until_ready(plain(*args))
            fn = lambda: plain(*args)  # noqa: E731
        ms = ns._median_time(lambda: jax.block_until_ready(fn()), 3, 1)
        label = type(op).__name__
        costs[label] = costs.get(label, 0.0) + ms
        return out

    def operation(op):
        if _is_graph(op):

            def walk(*args, **kwargs):
                inputs = args[0] if len(args) == 1 else list(args)
                return op._run_through_graph(inputs, operation_fn=operation)

            return walk

        def run(*args, **kwargs):
            kwargs.pop("training", None)
            return timed(op, args, kwargs)

        return run

    if _is_graph(model):
        operation(model)(jax.numpy.asarray(x))
    else:
        timed(model, (jax.numpy.asarray(x),), {})
    return {
        "wall": wall,
        "compile_s": compile_s,
        "layers": costs,
        "kinds": kinds,
    }


def _xla_kinds(step):
    """Thread-time (ms) of the XLA CPU program's operations in one `step`,
    by kind: the profiler names each executed operation after its HLO
    instruction (`ynn_fusion.3`, `transpose_copy_fusion.1`, `reduce.7`);
    the numeric suffix is dropped."""
    import glob
    import gzip
    import re

    import jax

    pattern = re.compile(r"^([a-z][a-z0-9_\-]*?)(\.\d+)?$")
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            step()
        (path,) = glob.glob(
            f"{folder}/**/perfetto_trace.json.gz", recursive=True
        )
        with gzip.open(path) as f:
            data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    kinds = {}
    for event in events:
        match = pattern.match(event.get("name", ""))
        if event.get("ph") == "X" and match:
            kind = match.group(1)
            kinds[kind] = kinds.get(kind, 0.0) + event.get("dur", 0) / 1e3
    return kinds


def worker(framework, workdir, names):
    start = time.perf_counter()
    workdir = Path(workdir)
    out = {}
    for name in names:
        if framework == "native":
            out[name] = _native(workdir, name)
        elif framework == "torch":
            out[name] = _kerapose_torch(workdir, name)
        else:
            out[name] = _kerapose_jax(workdir, name)
    print(f"{framework}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(json.dumps(out))


def _run(framework, workdir, names):
    return ns._run(framework, workdir, names, script=__file__)


def _torch_table(native, kerapose, names):
    lines = [
        "PyTorch: operator self-time of one step (profiler), ms; the rest "
        "of the wall time is Python, autograd and dispatch.",
        "",
        "| model | | "
        + " | ".join(TORCH_GROUPS)
        + " | Python, autograd, dispatch | wall |",
        "|---|---|" + "---|" * (len(TORCH_GROUPS) + 2),
    ]
    for name in names:
        for label, d in (
            ("native", native[name]),
            ("kerapose", kerapose[name]),
        ):
            cells = ns.profile_cells(d, TORCH_GROUPS)
            lines.append(f"| {name} | {label} | {cells} |")
    return "\n".join(lines)


def costliest(costs, count=5):
    """`"name ms, ..."` of the `count` largest entries of a dict."""
    top = sorted(costs.items(), key=lambda kv: -kv[1])[:count]
    return ", ".join(f"{k} {v:.0f}" for k, v in top)


def _jax_table(native, jax_rows, names):
    lines = [
        "JAX: the Keras train step (one XLA program), with the thread-time "
        "of its costliest operation kinds from the JAX profiler (`ynn_fusion`"
        ": convolutions and what XLA fused into them, run by YNNPACK; "
        "`*_fusion`: fused elementwise loops, reductions, layout copies), "
        "against the same operations each compiled alone, forward + "
        "backward, ms, and their five costliest layer classes.",
        "",
        "| model | native PyTorch step | JAX step (one program) | its "
        "costliest XLA operation kinds (thread-ms) | sum of operations "
        "compiled alone | costliest classes (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        d = jax_rows[name]
        lines.append(
            f"| {name} | {native[name]['wall']:.0f} | {d['wall']:.0f} "
            f"(compile {d['compile_s']:.0f} s) | "
            f"{costliest(d['kinds'])} | "
            f"{sum(d['layers'].values()):.0f} | {costliest(d['layers'])} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument(
        "--models",
        nargs="+",
        default=[n for n, spec in ns.MODELS.items() if spec[3]],
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=("torch", "jax"),
        default=["torch", "jax"],
        help="each writes its own BENCHMARKS.md section (the JAX one "
        "compiles every layer: tens of minutes)",
    )
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "DIR"))
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker[0], args.worker[1], args.models)
    with tempfile.TemporaryDirectory() as tmp:
        ns._run("prepare", tmp, args.models)
        native = _run("native", tmp, args.models)
        rows = {b: _run(b, tmp, args.models) for b in args.backends}
    tables = {"torch": _torch_table, "jax": _jax_table}
    for backend, found in rows.items():
        text = f"Batch {BATCH}, one training step (Adam, MSE).\n\n" + tables[
            backend
        ](native, found, args.models)
        print(text)
        if args.write:
            from report import invocation
            from report import write_section

            name = {"torch": "PyTorch", "jax": "JAX"}[backend]
            write_section(
                f"Where training-step time goes: {name} (CPU)",
                text,
                invocation(),
            )
    return None


if __name__ == "__main__":
    main()
