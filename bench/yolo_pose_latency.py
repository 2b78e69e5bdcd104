"""YOLO-Pose 640x640 batch-1 CPU latency per MAC, next to Ultralytics peers.

Every runtime runs in its own process, in alternating rounds (so load from
other processes on the shared CPU hits all of them alike): kerapose
`yolo_pose_s6` and `yolo_pose_s6_ti_lite` on each Keras backend (TF graph,
JAX jit, torch eager), the Ultralytics pose models through
`bench/peer_ultralytics.py` in the peer environment (`--peer-python`), and
the s6 TFLite files (float32, int8 with raw outputs) in LiteRT with 1 and
2 threads. Each figure is the median over rounds of a median of `--runs`.

    python bench/yolo_pose_latency.py [--rounds 3] [--runs 10] [--write]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = ("yolo_pose_s6", "yolo_pose_s6_ti_lite")
PEERS = ("yolo11n-pose", "yolo11s-pose", "yolov8s-pose")
SIZE = 640
TFLITE = (("float32", None), ("int8 (raw outputs)", "int8"))


def _runners(model, backend):
    """name -> callable(x) running one inference to numpy outputs (the
    model returns a list of levels, so hrnet_latency's runners do not fit)."""
    if backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x: model(x, training=False))
        return {"graph": lambda x: [y.numpy() for y in fn(x)]}
    if backend == "jax":
        import jax

        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        fn = jax.jit(
            lambda x: model.stateless_call(tv, ntv, x, training=False)[0]
        )
        return {"jit": lambda x: [np.asarray(y) for y in fn(x)]}
    import torch

    def eager(x):
        with torch.no_grad():
            return [y.cpu().numpy() for y in model(x, training=False)]

    return {"eager": eager}


def keras_worker(backend, runs):
    from hrnet_latency import _time

    from kerapose import zoo
    from kerapose.utils import count_macs

    rows = []
    for name in MODELS:
        model = zoo.load(name, compile=False)
        x = np.random.default_rng(0).uniform(size=(1, SIZE, SIZE, 3))
        x = x.astype("float32")
        if backend == "torch":
            import torch

            x = torch.from_numpy(x)
        for mode, fn in _runners(model, backend).items():
            rows.append(
                {
                    "model": name,
                    "runtime": f"Keras {backend} {mode}",
                    "ms": 1e3 * _time(fn, x, runs),
                    "macs": count_macs(model),
                }
            )
    print(json.dumps(rows))


def export_worker(folder, calibration):
    from kerapose import zoo
    from kerapose.export import export_tflite
    from kerapose.utils import count_macs

    model = zoo.load(MODELS[0], compile=False)
    for label, q in TFLITE:
        export_tflite(
            model,
            Path(folder) / f"{q or 'float32'}.tflite",
            quantization=q,
            num_calibration_samples=calibration,
        )
    (Path(folder) / "macs.json").write_text(json.dumps(count_macs(model)))


def tflite_worker(folder, runs):
    from tflite_export import _median_ms

    from kerapose.export import LiteRTModel

    macs = json.loads((Path(folder) / "macs.json").read_text())
    rows = []
    for label, q in TFLITE:
        for threads in (1, 2):
            runner = LiteRTModel(
                Path(folder) / f"{q or 'float32'}.tflite", num_threads=threads
            )
            x = np.random.default_rng(0).uniform(size=runner.input_shape)
            rows.append(
                {
                    "model": MODELS[0],
                    "runtime": f"LiteRT {label}, {threads} thread(s)",
                    "ms": _median_ms(runner, x.astype("float32"), runs),
                    "macs": macs,
                }
            )
    print(json.dumps(rows))


def peer_rows(python, runs):
    out = _run(
        [python, str(HERE / "peer_ultralytics.py"), "--models", *PEERS,
         "--size", str(SIZE), "--runs", str(runs)], {},
    )  # fmt: skip
    rows = []
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        for kind in ("fused", "unfused"):
            rows.append(
                {
                    "model": r["model"],
                    "runtime": f"Ultralytics torch {r['torch']} eager, {kind}",
                    "ms": 1e3 * r[f"seconds_{kind}"],
                    "macs": r["macs"],
                    "peer": kind,
                }
            )
    return rows


def _run(cmd, env):
    out = subprocess.run(
        cmd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    if out.returncode:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{' '.join(cmd[:3])} failed")
    return out.stdout


def _self(*args):
    return [sys.executable, __file__, *map(str, args)]


def measure(args):
    """{(model, runtime): row with the median ms over rounds}; the reason
    the peers are missing, if they are."""
    folder = tempfile.mkdtemp(prefix="kerapose_yolo_tflite_")
    _run(_self("--export", folder, "--calibration", args.calibration),
         {"KERAS_BACKEND": "tensorflow"})  # fmt: skip
    peer_missing = None
    python = Path(args.peer_python)
    if not python.exists():
        peer_missing = f"no peer Python at {python} (--peer-python)"
    else:
        check = subprocess.run(
            [str(python), "-c", "import ultralytics, torch"],
            capture_output=True,
            text=True,
        )
        if check.returncode:
            last = check.stderr.strip().splitlines()[-1:]
            peer_missing = f"{python} cannot import ultralytics: {last}"
    samples = {}
    for round_ in range(args.rounds):
        jobs = [("keras", b) for b in ("tensorflow", "jax", "torch")]
        jobs += [("tflite", None)] + ([] if peer_missing else [("peer", None)])
        for kind, backend in jobs:
            if kind == "keras":
                out = _run(_self("--worker", backend, "--runs", args.runs),
                           {"KERAS_BACKEND": backend})  # fmt: skip
                rows = json.loads(out.strip().splitlines()[-1])
            elif kind == "tflite":
                out = _run(_self("--tflite", folder, "--runs", args.runs),
                           {"KERAS_BACKEND": "tensorflow"})  # fmt: skip
                rows = json.loads(out.strip().splitlines()[-1])
            else:
                rows = peer_rows(str(python), args.runs)
            for r in rows:
                key = (r["model"], r["runtime"])
                samples.setdefault(key, {**r, "all": []})
                samples[key]["all"].append(r["ms"])
            print(
                f"round {round_ + 1}: {kind} {backend or ''} done", flush=True
            )
    for r in samples.values():
        r["ms"] = statistics.median(r["all"])
    return samples, peer_missing


def table(samples):
    peers = [r for r in samples.values() if "peer" in r]
    # The reference peer of each kind: its best time per MAC.
    ref = {}
    for kind in ("fused", "unfused"):
        mine = [r for r in peers if r["peer"] == kind]
        if mine:
            ref[kind] = min(mine, key=lambda r: r["ms"] / r["macs"])
    lines = [
        "| model | runtime | ms | GMACs | ms / GMAC | vs peer fused "
        "| vs peer unfused |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios = {kind: {} for kind in ref}
    for r in samples.values():
        per = r["ms"] / (r["macs"] / 1e9)
        cells = []
        for kind in ("fused", "unfused"):
            if kind not in ref or "peer" in r:
                cells.append("-")
                continue
            p = ref[kind]
            ratio = per / (p["ms"] / (p["macs"] / 1e9))
            cells.append(f"{ratio:.2f}x")
            ratios[kind][(r["model"], r["runtime"])] = ratio
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['ms']:.1f} "
            f"| {r['macs'] / 1e9:.2f} | {per:.1f} | {cells[0]} | {cells[1]} |"
        )
    return "\n".join(lines), ref, ratios


def _versions():
    from importlib.metadata import version

    def find(*names):
        for n in names:
            try:
                return f"{n} {version(n)}"
            except Exception:
                pass
        return f"{names[0]} (version unknown)"

    return ", ".join(
        find(*n)
        for n in (("keras",), ("tensorflow", "tensorflow-cpu"), ("jax",),
                  ("torch",), ("ai-edge-litert",))
    )  # fmt: skip


def verdict(ref, ratios):
    lines = []
    for kind, p in ref.items():
        keras = {k: v for k, v in ratios[kind].items() if "Keras" in k[1]}
        best = min(keras, key=keras.get)
        holds = "holds" if keras[best] <= 1.2 else "does not hold"
        lines.append(
            f"Goal (kerapose within 1.2x of the peer's time per MAC on at "
            f"least one Keras backend) against the {kind} peer ({p['model']}, "
            f"the peer with the lowest {kind} ms / GMAC): {holds}; best "
            f"{best[0]} on {best[1]} at {keras[best]:.2f}x."
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calibration", type=int, default=8)
    parser.add_argument("--peer-python", default="/work/peer-venv/bin/python")
    parser.add_argument("--worker", choices=["tensorflow", "jax", "torch"])
    parser.add_argument("--export", help=argparse.SUPPRESS)
    parser.add_argument("--tflite", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.worker:
        return keras_worker(args.worker, args.runs)
    if args.export:
        return export_worker(args.export, args.calibration)
    if args.tflite:
        return tflite_worker(args.tflite, args.runs)

    load_before = open("/proc/loadavg").read().split()[:3]
    samples, peer_missing = measure(args)
    load_after = open("/proc/loadavg").read().split()[:3]
    text, ref, ratios = table(samples)
    peer_note = (
        f"Peers not measured: {peer_missing}."
        if peer_missing
        else "Peers: Ultralytics pose models built from their yaml (random "
        "weights, no download) in their own environment, timed through "
        "`bench/peer_ultralytics.py` with PyTorch's default threads. "
        "Ultralytics fuses conv + batch norm for inference by default "
        "(`fused` rows, what a user gets); the `unfused` rows keep the "
        "batch norms, as the Keras graphs do (like with like)."
    )
    body = (
        f"Batch 1, {SIZE}x{SIZE}, random weights (speed does not depend on "
        "them). Each figure: median over "
        f"{args.rounds} alternating rounds (every runtime in its own process "
        f"each round) of the median of {args.runs} runs after warm-up. "
        "kerapose rows time the network to its raw head outputs (no box "
        "decode, no NMS); the Ultralytics forward in eval mode also decodes "
        "boxes and keypoints (no NMS). MACs: convolutions only, for both "
        "(`kerapose.utils.count_macs`; a conv hook in the peer worker). "
        "TFLite: LiteRT interpreter (XNNPACK), float32 input and output; "
        f"int8 calibrated on {args.calibration} synthetic images (speed "
        "does not depend on them). 'vs peer': kerapose ms / GMAC divided by "
        "the ms / GMAC of the peer with the lowest ms / GMAC of that kind. "
        f"{peer_note} kerapose side: {_versions()}. Load average "
        f"{' '.join(load_before)} before and "
        f"{' '.join(load_after)} after the run: the 2 cores are shared with "
        "another benchmark and a test run, so figures carry that noise; "
        "the alternating rounds spread it over all runtimes.\n\n"
        + text
        + "\n\n"
        + (verdict(ref, ratios) if ref else "Goal not checked: no peer.")
    )
    print(body)
    if args.write:
        from report import invocation
        from report import write_section

        write_section(
            "YOLO-Pose inference latency per MAC (CPU), vs Ultralytics",
            body,
            invocation(),
        )


if __name__ == "__main__":
    main()
