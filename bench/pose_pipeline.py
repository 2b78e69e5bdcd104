"""End-to-end pipeline speed: images per second, video frames per second,
and ONNX Runtime next to LiteRT and Keras.

* Images: the coco_sample photos repeated to `--images` files, person
  boxes from its detection-results file (score >= 0.5), HRNet-W32 256x192
  (random weights: speed does not depend on them): read, crop, pose,
  draw. Batched (`PosePipeline`, all crops of 8 images per network call)
  against one network call per person.
* Video: a window sliding over a photo (`--frames` frames), the same boxes
  shifted, with and without tracking + One-Euro smoothing.
* Export: HRNet-W32 and OmniPose-Lite batch 1, Keras (TF graph), LiteRT
  float32 and ONNX Runtime, 2 threads each, medians of `--runs`.

TensorFlow backend (the export path is TensorFlow's).

    python bench/pose_pipeline.py [--write]
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from kerapose import zoo  # noqa: E402
from kerapose.inference import read_image  # noqa: E402
from kerapose.inference.pipeline import DetectionsFile  # noqa: E402
from kerapose.inference.pipeline import PosePipeline  # noqa: E402
from kerapose.inference.smoothing import KeypointSmoother  # noqa: E402
from kerapose.inference.top_down import predict_images  # noqa: E402
from kerapose.inference.tracking import PoseTracker  # noqa: E402
from kerapose.inference.video import predict_video  # noqa: E402

COCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_sample"
DETECTIONS = COCO / "test_coco_det_AP_H_56.json"


def _photos(folder, count):
    photos = sorted(COCO.glob("*.jpg"))
    names = {}
    for i in range(count):
        src = photos[i % len(photos)]
        dst = folder / f"{i:04d}_{src.name}"
        shutil.copy(src, dst)
        names[dst.name] = int(src.stem)
    return names


def images_per_second(model, count, rounds):
    folder = Path(tempfile.mkdtemp(prefix="kerapose_pipe_"))
    ids = _photos(folder, count)
    detections = DetectionsFile(DETECTIONS, image_ids=ids)

    def batched():
        pipe = PosePipeline(model, detector=detections, min_box_score=0.5)
        results = pipe(folder)
        for name, r in zip(pipe.names, results):
            r.plot(read_image(name))
        return sum(len(r) for r in results)

    def per_person():
        people = 0
        for path in sorted(folder.glob("*.jpg")):
            image = read_image(path)
            boxes, scores = detections(image, path.name)
            keep = scores >= 0.5
            for b, s in zip(boxes[keep], scores[keep]):
                r = predict_images(model, [image], [b[None]], [s[None]])[0]
                people += len(r)
            r.plot(image)
        return people

    batched(), per_person()  # warm-up: every batch shape compiled
    rows = {}
    for label, fn in (
        ("batched", batched),
        ("one call per person", per_person),
    ):
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            people = fn()
            times.append(time.perf_counter() - start)
        rows[label] = (count / statistics.median(times), people)
    return rows


def _video(folder, frames):
    photo = cv2.imread(str(COCO / "000000040083.jpg"))
    path = folder / "clip.avi"
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (320, 240)
    )
    for f in range(frames):
        x0 = 60 + (f % 20) * 3
        writer.write(np.ascontiguousarray(photo[80:320, x0 : x0 + 320]))
    writer.release()
    boxes = np.array([[38, 111, 175, 175], [258, 139, 140, 154]], np.float32)
    return path, boxes


def frames_per_second(model, frames):
    folder = Path(tempfile.mkdtemp(prefix="kerapose_video_"))
    path, boxes = _video(folder, frames)

    def detector(image, name):
        f = int(name.split("_")[1])
        return boxes - [60 + (f % 20) * 3, 80, 0, 0], None

    rows = {}
    pipe = PosePipeline(model, detector=detector)
    predict_video(pipe, path, progress=False)  # warm-up
    for label, track in (
        ("no tracking", False),
        ("tracking + smoothing", True),
    ):
        start = time.perf_counter()
        predict_video(
            pipe,
            path,
            out=folder / "out.avi",
            tracker=PoseTracker() if track else None,
            smoother=KeypointSmoother(beta=0.05) if track else None,
            progress=False,
        )
        rows[label] = frames / (time.perf_counter() - start)
    return rows


def _median_ms(fn, x, runs):
    fn(x)
    fn(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def runtimes(names, runs):
    import tensorflow as tf

    from kerapose.export import export_tflite
    from kerapose.export.litert_runner import LiteRTModel
    from kerapose.export.onnx import ONNXRuntimeModel
    from kerapose.export.onnx import export_onnx

    folder = Path(tempfile.mkdtemp(prefix="kerapose_rt_"))
    rows = {}
    for name in names:
        model = zoo.load(name, compile=False)
        x = np.random.default_rng(0).normal(size=(1, *model.input_shape[1:]))
        x = x.astype("float32")
        keras_fn = tf.function(lambda t, m=model: m(t, training=False))
        tfl = LiteRTModel(
            export_tflite(model, folder / f"{name}.tflite"), num_threads=2
        )
        onnx = ONNXRuntimeModel(
            export_onnx(model, folder / f"{name}.onnx"), num_threads=2
        )
        rows[name] = {
            "Keras (TF graph)": _median_ms(keras_fn, x, runs),
            "LiteRT float32": _median_ms(tfl.run_one, x, runs),
            "ONNX Runtime": _median_ms(onnx, x, runs),
        }
    return rows


def report(args, images, video, rt):
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    lines = [
        f"Load average (1, 5, 15 min) after the run: {load} (2 cores).",
        "",
        f"Images: {args.images} coco_sample photos (1-5 people each), boxes "
        "from its detection-results file (score >= 0.5), HRNet-W32 "
        "256x192 (random weights), read + crop + pose + draw, median of "
        f"{args.rounds} rounds after a warm-up:",
        "",
        "| mode | people | images / s |",
        "|---|---|---|",
    ]
    for label, (rate, people) in images.items():
        lines.append(f"| {label} | {people} | {rate:.2f} |")
    ratio = images["batched"][0] / images["one call per person"][0]
    lines += [
        "",
        f"Batched crops: {ratio:.2f}x the images per second of one call "
        "per person.",
        "",
        f"Video: {args.frames} frames of 320x240 with 2 people, HRNet-W32, "
        "boxes given, drawn video written:",
        "",
        "| mode | frames / s |",
        "|---|---|",
    ]
    for label, fps in video.items():
        lines.append(f"| {label} | {fps:.2f} |")
    lines += [
        "",
        f"Batch 1 latency, 2 threads, median of {args.runs} runs (ms):",
        "",
        "| model | Keras (TF graph) | LiteRT float32 | ONNX Runtime |",
        "|---|---|---|---|",
    ]
    for name, r in rt.items():
        cells = " | ".join(f"{v:.1f}" for v in r.values())
        lines.append(f"| `{name}` | {cells} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--models", nargs="+", default=["hrnet_w32", "omnipose_lite"]
    )
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    model = zoo.load("hrnet_w32", compile=False)
    images = images_per_second(model, args.images, args.rounds)
    print(json.dumps(images))
    video = frames_per_second(model, args.frames)
    print(json.dumps(video))
    rt = runtimes(args.models, args.runs)
    text = report(args, images, video, rt)
    print(text)
    if args.write:
        sys.path.insert(0, str(Path(__file__).parent))
        from report import invocation
        from report import write_section

        write_section(
            "Pose pipeline: images, video, ONNX Runtime (CPU)",
            text,
            invocation(),
        )


if __name__ == "__main__":
    main()
