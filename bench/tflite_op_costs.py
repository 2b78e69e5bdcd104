"""Where int8 pays in LiteRT: per-operator latency, float32 vs int8.

Each operator kind is measured in a chain of `--reps` copies (conv + BN +
ReLU, folded by the converter) at one HRNet branch-0 tensor size; the time
of a chain of one is subtracted, so the input quantize / output dequantize
and the interpreter's fixed cost cancel. The ratio per kind says which
networks int8 speeds up: dense convs a lot, depthwise convs hardly.

    python bench/tflite_op_costs.py [--shape 64 48 48] [--reps 9] [--write]
"""

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402
from tflite_export import _median_ms  # noqa: E402

from kerapose.export import LiteRTModel  # noqa: E402
from kerapose.export import export_tflite  # noqa: E402


def _conv_bn_relu(conv):
    def step(x):
        y = layers.BatchNormalization()(conv()(x))
        return layers.ReLU()(y)

    return step


def _residual_add(x):
    return layers.ReLU()(layers.Add()([x, layers.ReLU()(x)]))


def kinds(channels):
    return {
        "3x3 conv (dense)": _conv_bn_relu(
            lambda: layers.Conv2D(channels, 3, padding="same", use_bias=False)
        ),
        "1x1 conv (pointwise)": _conv_bn_relu(
            lambda: layers.Conv2D(channels, 1, use_bias=False)
        ),
        "3x3 depthwise": _conv_bn_relu(
            lambda: layers.DepthwiseConv2D(3, padding="same", use_bias=False)
        ),
        "3x3 depthwise, dilation 6": _conv_bn_relu(
            lambda: layers.DepthwiseConv2D(
                3, padding="same", dilation_rate=6, use_bias=False
            )
        ),
        "residual add + ReLU": _residual_add,
    }


def _chain(step, shape, reps):
    inputs = keras.Input(shape)
    x = inputs
    for _ in range(reps):
        x = step(x)
    return keras.Model(inputs, x)


def measure(args):
    shape = tuple(args.shape)
    folder = Path(tempfile.mkdtemp(prefix="kerapose_ops_"))
    calib = np.random.default_rng(0).normal(size=(8, *shape))
    calib = calib.astype("float32")
    x = calib[:1]
    rows = []
    for name, step in kinds(shape[-1]).items():
        keras.utils.set_random_seed(0)
        per_op = {}
        for label, q in (("float32", None), ("int8", "int8")):
            times = []
            for reps in (1, args.reps):
                path = export_tflite(
                    _chain(step, shape, reps),
                    folder / f"{len(rows)}_{label}_{reps}.tflite",
                    quantization=q,
                    representative_data=calib if q else None,
                    input_shape=shape,
                )
                runner = LiteRTModel(path, num_threads=1)
                times.append(
                    min(_median_ms(runner, x, args.runs) for _ in range(3))
                )
            per_op[label] = (times[1] - times[0]) / (args.reps - 1)
        rows.append((name, per_op["float32"], per_op["int8"]))
        print(rows[-1], flush=True)
    return rows


def table(rows, args):
    h, w, c = args.shape
    lines = [
        f"Per operator at {h}x{w}x{c}, one thread:",
        "",
        "| operator (+ folded BN, ReLU) | float32 ms | int8 ms "
        "| int8 / float32 |",
        "|---|---|---|---|",
    ]
    for name, f, i in rows:
        lines.append(f"| {name} | {f:.3f} | {i:.3f} | {i / f:.2f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 48, 48))
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("TFLite export needs KERAS_BACKEND=tensorflow.")
    body = (
        "LiteRT interpreter (ai-edge-litert, XNNPACK), batch 1. Each "
        f"operator kind timed in a chain of {args.reps} copies minus a "
        "chain of one (quantize / dequantize and fixed costs cancel), "
        f"divided by {args.reps - 1}; best of 3 medians of {args.runs} "
        "runs.\n\n" + table(measure(args), args)
    )
    print(body)
    if args.write:
        from report import invocation
        from report import write_section

        write_section(
            "TFLite int8 speed-up per operator kind", body, invocation()
        )


if __name__ == "__main__":
    main()
