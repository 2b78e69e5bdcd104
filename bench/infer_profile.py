"""Where batch-1 inference time goes: native PyTorch eager against
kerapose's `FastForward` (what `predict_image`, the pipeline and COCO
evaluation run) on the PyTorch and JAX backends, same weights as
`bench/native_speed.py`.

PyTorch (native, and kerapose's frozen trace): operator self-time from the
PyTorch profiler, grouped as in `bench/train_profile.py`; the rest of the
wall time is Python and dispatch. JAX: the thread-time of the costliest
XLA operation kinds of one call (`ynn_fusion`: convolutions and what XLA
fused into them; `*_fusion`: fused elementwise loops, reductions, layout
copies). Each framework runs in its own process.

    python bench/infer_profile.py [--write] [--models hrnet_w32 ...]
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
import train_profile as tp  # noqa: E402

GROUPS = (
    "convolution forward",
    "batch norm",
    "elementwise and reductions",
    "layout copies",
    "other operators",
)


def _native(workdir, name):
    import torch

    model = ns._native_model(name)
    model.load_state_dict(torch.load(workdir / f"{name}.pth"))
    model.eval()
    x = torch.from_numpy(ns._inputs(name, 1))
    with torch.no_grad():
        return tp._profile_torch(lambda: model(x))


def _image(name):
    return ns._inputs(name, 1).transpose(0, 2, 3, 1).copy()


def _kerapose_torch(workdir, name):
    import torch

    from kerapose.inference import FastForward

    forward = FastForward(ns._kerapose_model(workdir, name))
    x = _image(name)
    with torch.no_grad():
        return tp._profile_torch(lambda: forward(x))


def _kerapose_jax(workdir, name):
    from kerapose.inference import FastForward

    forward = FastForward(ns._kerapose_model(workdir, name))
    x = _image(name)
    forward(x)  # compiles
    return {
        "wall": ns._median_time(lambda: forward(x), 5, warmup=1),
        "kinds": tp._xla_kinds(lambda: forward(x)),
    }


def worker(framework, workdir, names):
    start = time.perf_counter()
    workdir = Path(workdir)
    run = {"native": _native, "torch": _kerapose_torch, "jax": _kerapose_jax}
    out = {name: run[framework](workdir, name) for name in names}
    print(f"{framework}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(json.dumps(out))


def _run(framework, workdir, names):
    return ns._run(framework, workdir, names, script=__file__)


def _tables(native, torch_rows, jax_rows, names):
    lines = [
        "PyTorch: operator self-time of one batch-1 forward pass "
        "(profiler), ms; the rest of the wall time is Python and dispatch.",
        "",
        "| model | | " + " | ".join(GROUPS) + " | Python, dispatch | wall |",
        "|---|---|" + "---|" * (len(GROUPS) + 2),
    ]
    for name in names:
        for label, d in (
            ("native", native[name]),
            ("kerapose FastForward", torch_rows[name]),
        ):
            lines.append(
                f"| {name} | {label} | {ns.profile_cells(d, GROUPS)} |"
            )
    lines += [
        "",
        "JAX: `FastForward` wall time and the thread-time of its costliest "
        "XLA operation kinds (one call, ms), against native PyTorch's "
        "convolution self-time and wall time.",
        "",
        "| model | native convolutions | native wall | JAX wall | its "
        "costliest XLA operation kinds (thread-ms) |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        d = jax_rows[name]
        conv = native[name]["groups"]["convolution forward"]
        lines.append(
            f"| {name} | {conv:.0f} | {native[name]['wall']:.0f} | "
            f"{d['wall']:.0f} | {tp.costliest(d['kinds'])} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument(
        "--models",
        nargs="+",
        default=["hrnet_w32", "higherhrnet_w32", "hourglass_ae"],
        help="defaults to the models above 1.0x native at batch 1",
    )
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "DIR"))
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(ns.MODELS))
    if unknown:
        raise SystemExit(f"unknown models {unknown}; known: {list(ns.MODELS)}")
    if args.worker:
        return worker(args.worker[0], args.worker[1], args.models)
    with tempfile.TemporaryDirectory() as tmp:
        ns._run("prepare", tmp, args.models)
        native = _run("native", tmp, args.models)
        torch_rows = _run("torch", tmp, args.models)
        jax_rows = _run("jax", tmp, args.models)
    text = _tables(native, torch_rows, jax_rows, args.models)
    print(text)
    if args.write:
        from report import invocation
        from report import write_section

        write_section(
            "Where batch-1 inference time goes (CPU)", text, invocation()
        )
    return None


if __name__ == "__main__":
    main()
