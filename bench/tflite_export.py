"""TFLite export: file size, LiteRT latency and accuracy per quantization.

Two parts, each its own section of BENCHMARKS.md:

* `--part latency`: full-size HRNet-W32 and OmniPose-Lite (256x192, random
  weights: size and speed do not depend on them) exported as float32,
  fp16, dynamic range and int8, timed in the LiteRT interpreter with 1 and
  2 threads, interleaved with a real mobile pose model
  (../shared/data/peers/pose_landmark_full.tflite) in the same run.
* `--part accuracy`: small presets trained briefly on the synthetic set,
  then each TFLite variant (and an int8 file after quantization-aware
  fine-tuning, next to a float copy fine-tuned as long) scored on the
  synthetic validation split (COCO AP) and compared with the float Keras
  model on real COCO person crops (../shared/data/coco_sample): mean
  keypoint displacement.

    python bench/tflite_export.py --part latency [--runs 20] [--write]
    python bench/tflite_export.py --part accuracy [--minutes 6 | --epochs N]
        [--qat-minutes 2 | --qat-epochs N] [--small MODEL ...] [--write]
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from learn_synthetic import Budget  # noqa: E402
from learn_synthetic import add_sigma_argument  # noqa: E402
from learn_synthetic import load_model  # noqa: E402

from kerapose import zoo  # noqa: E402
from kerapose.export import LiteRTModel  # noqa: E402
from kerapose.export import export_tflite  # noqa: E402
from kerapose.export import verify_tflite  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PEER = SHARED / "peers" / "pose_landmark_full.tflite"
COCO = SHARED / "coco_sample"
VARIANTS = (("float32", None), ("fp16", "fp16"), ("dynamic", "dynamic"))
VARIANTS += (("int8", "int8"),)


def _median_ms(runner, x, runs):
    runner.run_one(x)
    runner.run_one(x)  # warm-up: allocation, XNNPACK packing
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.run_one(x)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def latency(args):
    folder = Path(tempfile.mkdtemp(prefix="kerapose_tflite_"))
    files = {}
    for name in args.models:
        model = zoo.load(name, compile=False)
        for label, q in VARIANTS:
            start = time.time()
            files[(name, label)] = export_tflite(
                model,
                folder / f"{name}_{label}.tflite",
                quantization=q,
                num_calibration_samples=args.calibration,
            )
            print(f"exported {name} {label} in {time.time() - start:.0f} s")
    if PEER.exists():
        files[("peer: pose_landmark_full", "float32 (as shipped)")] = PEER
    rng = np.random.default_rng(0)
    rows = {key: {"size": path.stat().st_size} for key, path in files.items()}
    # Interleaved rounds: every file is timed in every round, so load from
    # other processes on the shared CPU hits all of them alike.
    samples = {(key, t): [] for key in files for t in (1, 2)}
    runners = {
        (key, t): LiteRTModel(path, num_threads=t)
        for key, path in files.items()
        for t in (1, 2)
    }
    for _ in range(args.rounds):
        for (key, t), runner in runners.items():
            x = rng.normal(size=runner.input_shape).astype("float32")
            if key[0].startswith("peer"):
                x = rng.uniform(size=runner.input_shape).astype("float32")
            samples[(key, t)].append(_median_ms(runner, x, args.runs))
    for (key, t), values in samples.items():
        rows[key][t] = min(values)
    return rows


def latency_table(rows, args):
    lines = [
        "| model | input | variant | file MB | 1 thread ms | 2 threads ms "
        "| vs float32 (1 thread) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (name, label), r in rows.items():
        base = rows.get((name, "float32"))
        ratio = f"{r[1] / base[1]:.2f}x" if base else "-"
        size = "256x256" if name.startswith("peer") else "256x192"
        lines.append(
            f"| {name} | {size} | {label} | {r['size'] / 1e6:.1f} "
            f"| {r[1]:.1f} | {r[2]:.1f} | {ratio} |"
        )
    return "\n".join(lines)


class _LiteRTEstimator:
    """What `predict_dataset` needs of a model, backed by a .tflite file."""

    def __init__(self, path, model):
        self.runner = LiteRTModel(path)
        self.codec = model.codec
        self.num_keypoints = model.num_keypoints
        self.input_shape = model.input_shape

    def predict(self, crops, batch_size=None, verbose=0):
        return {"heatmaps": self.runner(np.asarray(crops, np.float32))}


def _ap(model, val, image_dir):
    from kerapose.eval.top_down import evaluate_top_down

    return evaluate_top_down(model, val, image_dir)["AP"]


def _train(model, dataset, minutes, lr, epochs=0, drop=0.2):
    """Fits for `minutes` (or exactly `epochs`), lr / 10 for the last
    `drop` fraction; returns (epochs, seconds)."""
    model.compile(optimizer=keras.optimizers.Adam(lr))
    budget = Budget(minutes * 60, epochs, lr, drop=drop)
    start = time.time()
    model.fit(
        dataset,
        epochs=epochs or 10_000,
        callbacks=[budget],
        verbose=2,
        shuffle=False,
    )
    return budget.epochs, time.time() - start


def _displacement(path, float_model, real):
    out = {}
    for threshold in (0.0, 0.2):
        r = verify_tflite(
            path,
            float_model,
            real,
            num_images=64,
            max_mean_keypoint_px=None,
            score_threshold=threshold,
        )
        out[threshold] = (r.mean_keypoint_px, r.num_keypoints)
    out["heatmap"] = (r.mean_heatmap_diff, r.heatmap_peak)
    return out


def accuracy_one(name, args, data):
    from kerapose.data.pipelines import build_top_down_dataset
    from kerapose.export.representative import calibration_images
    from kerapose.quantization import quantize_aware

    keras.utils.set_random_seed(args.seed)
    h, w = args.input_size
    model = load_model(name, args.input_size, args.sigma)
    train = build_top_down_dataset(
        data["train"],
        data["images"],
        model.codec,
        batch_size=32,
        seed=args.seed,
        verbose=False,
    )
    epochs, seconds = _train(
        model, train, args.minutes, args.lr, epochs=args.epochs
    )
    val, images = data["val"], data["images"]
    real = build_top_down_dataset(
        COCO / "test_coco.json", COCO, model.codec, training=False,
        verbose=False,
    )  # fmt: skip
    # Calibration: crops of the training split, as a user would take them.
    calib_ds = build_top_down_dataset(
        data["train"], images, model.codec, training=False, verbose=False
    )
    calib = calibration_images(calib_ds, (h, w, 3), args.calibration)
    folder = Path(tempfile.mkdtemp(prefix="kerapose_acc_"))
    base = _ap(model, val, images)
    rows = [("Keras float32", None, base, None, None)]
    for label, q in VARIANTS:
        path = export_tflite(
            model,
            folder / f"{label}.tflite",
            quantization=q,
            representative_data=calib if q == "int8" else None,
        )
        ap = _ap(_LiteRTEstimator(path, model), val, images)
        rows.append((f"{label} (PTQ)" if q == "int8" else label, path, ap,
                     _displacement(path, model, real), base))  # fmt: skip
        print(rows[-1][0], ap)
    # QAT: a copy of the trained model, fine-tuned with fake quantization,
    # and a float copy fine-tuned for the same epochs (the control: QAT's
    # AP drop is measured against it, not against the shorter-trained
    # model, so extra training does not pass for quantization quality).
    weights = folder / "float.weights.h5"
    model.save_weights(weights)
    qat = load_model(name, args.input_size, args.sigma)
    qat.load_weights(weights)
    quantize_aware(qat, calib)
    lr = args.lr * 0.1  # the end of the float schedule
    qat_epochs, qat_seconds = _train(
        qat, train, args.qat_minutes, lr, epochs=args.qat_epochs, drop=0.0
    )
    control = load_model(name, args.input_size, args.sigma)
    control.load_weights(weights)
    _train(control, train, 0, lr, epochs=qat_epochs, drop=0.0)
    control_ap = _ap(control, val, images)
    rows.append((f"Keras float32, fine-tuned {qat_epochs} more epochs "
                 "(control)", None, control_ap, None, None))  # fmt: skip
    path = export_tflite(
        qat, folder / "int8_qat.tflite", "int8", representative_data=calib
    )
    ap = _ap(_LiteRTEstimator(path, model), val, images)
    rows.append(("int8 (QAT)", path, ap, _displacement(path, control, real),
                 control_ap))  # fmt: skip
    rows.append(("Keras QAT model (fake quant)", None, _ap(qat, val, images),
                 None, None))  # fmt: skip
    return {
        "name": name,
        "params": model.count_params(),
        "sigma": model.codec.sigma,
        "epochs": epochs,
        "seconds": seconds,
        "qat_epochs": qat_epochs,
        "qat_seconds": qat_seconds,
        "rows": rows,
    }


def accuracy_table(results, args):
    h, w = args.input_size
    lines = []
    for r in results:
        lines += [
            f"**{r['name']}** ({r['params']:,} parameters, {h}x{w} input, "
            f"target sigma {r['sigma']:g}): "
            f"trained {r['seconds'] / 60:.1f} min ({r['epochs']} epochs) on "
            f"the synthetic set; QAT fine-tuning {r['qat_seconds'] / 60:.1f} "
            f"min ({r['qat_epochs']} epochs) from those weights.",
            "",
            "| variant | file KB | synthetic val AP | AP drop (points) "
            "| real crops: mean displacement px, all keypoints "
            "| same, Keras score > 0.2 | mean heatmap diff / mean peak |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, path, ap, d, base in r["rows"]:  # base: AP compared
            size = f"{path.stat().st_size / 1e3:.0f}" if path else "-"
            drop = f"{100 * (base - ap):+.1f}" if base is not None else "-"
            if d:
                disp = f"{d[0.0][0]:.2f} ({d[0.0][1]})"
                conf = f"{d[0.2][0]:.2f} ({d[0.2][1]})"
                heat = f"{d['heatmap'][0]:.4f} / {d['heatmap'][1]:.3f}"
            else:
                disp = conf = heat = "-"
            lines.append(
                f"| {label} | {size} | {ap:.3f} | {drop} | {disp} | {conf} "
                f"| {heat} |"
            )
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=["latency", "accuracy"])
    parser.add_argument(
        "--models", nargs="+", default=["hrnet_w32", "omnipose_lite"]
    )
    parser.add_argument(
        "--small", nargs="+", default=["test_hrnet", "test_omnipose_lite"]
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument(
        "--epochs", type=int, default=0, help="instead of --minutes (0: off)"
    )
    parser.add_argument(
        "--qat-epochs",
        type=int,
        default=0,
        help="instead of --qat-minutes (0: off)",
    )
    parser.add_argument("--qat-minutes", type=float, default=2.0)
    parser.add_argument("--input-size", type=int, nargs=2, default=(64, 64))
    parser.add_argument("--train-images", type=int, default=800)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-3)
    add_sigma_argument(parser, "each preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("TFLite export needs KERAS_BACKEND=tensorflow.")

    if args.part == "latency":
        rows = latency(args)
        body = (
            "Random weights (size and speed do not depend on them); int8 "
            f"calibrated on {args.calibration} synthetic crops. LiteRT "
            "interpreter (ai-edge-litert, XNNPACK), batch 1, float32 input "
            f"and output for every variant. Each figure: best of "
            f"{args.rounds} interleaved rounds of the median of {args.runs} "
            "runs; the ratios compare files timed side by side in the "
            "same rounds. The peer is a widely used mobile single-person "
            "landmark model, as shipped (float32, 256x256).\n\n"
            + latency_table(rows, args)
        )
        title = "TFLite export: file size and LiteRT latency"
    else:
        from kerapose.data.synthetic import write_synthetic_coco

        tmp = tempfile.mkdtemp(prefix="kerapose_synth_")
        data = {
            "train": write_synthetic_coco(
                tmp, args.train_images, seed=args.seed, split="train"
            ),
            "val": write_synthetic_coco(
                tmp, args.val_images, seed=args.seed, split="val"
            ),
            "images": Path(tmp) / "images",
        }
        results = [accuracy_one(name, args, data) for name in args.small]
        body = (
            f"{args.train_images} synthetic training images, AP on "
            f"{args.val_images} held-out synthetic images (ground-truth "
            "boxes, flip test, pycocotools), each TFLite file run in the "
            "LiteRT interpreter. Adam "
            f"{args.lr:g}, batch 32, learning rate / 10 for the last 20% "
            "of the budget; QAT: `quantize_aware` then `model.fit` at "
            f"{args.lr * 0.1:g}, and a float copy fine-tuned for the same "
            "epochs at the same rate as the control (QAT's AP drop and "
            "displacement are measured against it; the other variants' "
            "against the float model they were exported from). int8 "
            f"calibrated on {args.calibration} "
            "training-split crops. Displacement: the TFLite file against "
            "the float Keras model on the real COCO sample's 14 person "
            "crops, in input pixels (number of keypoints counted in "
            "brackets); models trained on synthetic stick figures are "
            "unsure on real photos, so the column restricted to keypoints "
            "the float model scores above 0.2 is the one an app sees.\n\n"
            + accuracy_table(results, args)
        )
        title = "TFLite export: accuracy after quantization (PTQ, QAT)"
    print(body)
    if args.write:
        from report import invocation
        from report import write_section

        write_section(title, body, invocation())


if __name__ == "__main__":
    main()
