"""Throughput of the top-down training pipeline against JPEG decoding alone.

Writes a synthetic COCO set to a temporary folder, then times

* the training pipeline (``build_top_down_dataset``, 256x192 input, full
  augmentation, heatmap targets), and
* a ``tf.data`` map that only reads and decodes the same JPEG for every
  person (one decode per sample, as the pipeline does), with the same
  parallelism and batching,

and prints both rates and their ratio. ``--write`` records the figures in
the ``## Top-down data pipeline`` section of BENCHMARKS.md.

Usage:
    python bench/pipeline.py --num-images 200
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import re
import shlex
import sys
import tempfile
import time

import tensorflow as tf

from kerapose.codecs.msra_heatmap import MSRAHeatmap
from kerapose.data.coco import load_coco_instances
from kerapose.data.pipelines import build_top_down_dataset
from kerapose.data.synthetic import write_synthetic_coco

SECTION = "## Top-down data pipeline"
BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def _samples_per_second(dataset: tf.data.Dataset, epochs: int) -> float:
    count = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in dataset:
            count += int(batch[0].shape[0])
    return count / (time.perf_counter() - start)


def _best_rates(datasets: dict, epochs: int, rounds: int) -> dict:
    """Best samples/s of each dataset over interleaved rounds.

    Interleaving and keeping the best round make the ratio robust to other
    load on a shared machine.
    """
    for dataset in datasets.values():  # warm-up: tracing, threads, cache
        for _ in dataset:
            pass
    best = dict.fromkeys(datasets, 0.0)
    for _ in range(rounds):
        for name, dataset in datasets.items():
            rate = _samples_per_second(dataset, epochs)
            best[name] = max(best[name], rate)
    return best


def _decode_only(paths, batch_size: int, parallel: int) -> tf.data.Dataset:
    def decode(path):
        raw = tf.io.read_file(path)
        # Same decoder settings as the pipeline.
        return (
            tf.io.decode_jpeg(raw, channels=3, dct_method="INTEGER_ACCURATE"),
        )

    ds = tf.data.Dataset.from_tensor_slices(paths)
    ds = ds.map(decode, num_parallel_calls=parallel, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def run(args: argparse.Namespace) -> dict:
    parallel = args.num_parallel_calls or tf.data.AUTOTUNE
    codec = MSRAHeatmap((256, 192), (64, 48), sigma=2.0)
    with tempfile.TemporaryDirectory() as tmp:
        ann = write_synthetic_coco(
            tmp, num_images=args.num_images, image_size=tuple(args.image_size)
        )
        image_dir = os.path.join(tmp, "images")
        instances, _ = load_coco_instances(ann, image_dir, mode="train")
        pipeline = build_top_down_dataset(
            ann,
            image_dir,
            codec,
            batch_size=args.batch_size,
            training=True,
            seed=0,
            num_parallel_calls=parallel,
            drop_remainder=False,
            verbose=False,
        )
        decode = _decode_only(
            instances["image_path"], args.batch_size, parallel
        )
        rates = _best_rates(
            {"pipeline": pipeline, "decode": decode}, args.epochs, args.rounds
        )
    return {
        **rates,
        "ratio": rates["pipeline"] / rates["decode"],
        "samples": len(instances["image_path"]),
        "images": args.num_images,
    }


def _nproc() -> int:
    # Like `nproc`: the cores this process may run on.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _section(result: dict, args: argparse.Namespace, command: str) -> str:
    h, w = args.image_size
    return "\n".join(
        [
            SECTION,
            "",
            f"Measured {datetime.date.today().isoformat()} on a machine "
            f"with {_nproc()} CPU cores (nproc), TensorFlow "
            f"{tf.__version__}.",
            "",
            f"Synthetic COCO set: {args.num_images} JPEGs of {w}x{h}, "
            f"{result['samples']} person samples per epoch, "
            f"batch {args.batch_size}, input 256x192, heatmaps 64x48, full "
            "augmentation (half-body, scale, rotation, flip). The pipeline "
            "decodes only the JPEG window its crop samples; the baseline "
            "decodes whole images.",
            "",
            f"Best of {args.rounds} interleaved rounds of {args.epochs} "
            "epochs each.",
            "",
            "| what | samples/s |",
            "| --- | --- |",
            f"| training pipeline | {result['pipeline']:.0f} |",
            f"| JPEG read + decode only | {result['decode']:.0f} |",
            f"| ratio | {result['ratio']:.2f} |",
            "",
            "Command:",
            "",
            "```",
            command,
            "```",
            "",
        ]
    )


def write_section(text: str, path: pathlib.Path = BENCHMARKS) -> None:
    """Replaces (or appends) this benchmark's section of BENCHMARKS.md."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    # The section runs to the next level-2 heading or the end of the file.
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: text + "\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new.rstrip("\n") + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=200)
    parser.add_argument(
        "--image-size", type=int, nargs=2, default=(480, 640),
        metavar=("H", "W"),
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--num-parallel-calls", type=int, default=0,
        help="0 means tf.data.AUTOTUNE",
    )  # fmt: skip
    parser.add_argument(
        "--write", action="store_true", help="update BENCHMARKS.md"
    )
    args = parser.parse_args(argv)
    result = run(args)
    print(f"training pipeline: {result['pipeline']:8.1f} samples/s")
    print(f"JPEG decode only:  {result['decode']:8.1f} samples/s")
    print(f"ratio:             {result['ratio']:8.2f}")
    if args.write:
        argv = sys.argv[1:] if argv is None else argv
        command = shlex.join(["python", "bench/pipeline.py", *argv])
        write_section(_section(result, args, command))
        print(f"updated {BENCHMARKS}")


if __name__ == "__main__":
    main()
