"""kerapose end to end on built-in synthetic data, in a few minutes on a CPU.

1. writes a synthetic COCO-format keypoint set (train and val splits),
2. trains a small HRNet (HRNet-W18-Small at 128x96) with `model.fit` on
   the tf.data pipeline,
3. evaluates COCO keypoint AP on the val split with pycocotools,
4. exports the model to TFLite (float32 and int8) and checks each file in
   the LiteRT interpreter (TensorFlow backend, when ai-edge-litert is
   installed),
5. finds the people on four val images with `PosePipeline` (person boxes
   from a COCO detection-results file) and draws them in a grid.

    python examples/demo.py [--out demo_out] [--epochs 20]
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import keras  # noqa: E402

from kerapose import zoo  # noqa: E402
from kerapose.data.pipelines import build_top_down_dataset  # noqa: E402
from kerapose.data.synthetic import write_synthetic_coco  # noqa: E402
from kerapose.eval.top_down import evaluate_top_down  # noqa: E402
from kerapose.inference import DetectionsFile  # noqa: E402
from kerapose.inference import PosePipeline  # noqa: E402
from kerapose.inference import draw_grid  # noqa: E402
from kerapose.inference import read_image  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo_out")
    parser.add_argument("--model", default="hrnet_w18_small")
    parser.add_argument("--input-size", type=int, nargs=2, default=(128, 96))
    parser.add_argument("--train-images", type=int, default=300)
    parser.add_argument("--val-images", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def step(message):
    print(f"\n=== {message}", flush=True)


def export_tflite(model, out_dir, sample):
    """Float and int8 TFLite files, checked against Keras in LiteRT."""
    if keras.backend.backend() != "tensorflow":
        print("TFLite export needs the TensorFlow backend; skipped.")
        return None
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        print("ai-edge-litert is not installed; export skipped.")
        return None
    from kerapose.export import export_tflite as export
    from kerapose.export import verify_tflite

    summary = {}
    for name, quantization in (("float32", None), ("int8", "int8")):
        path = export(
            model,
            out_dir / f"model_{name}.tflite",
            quantization=quantization,
            representative_data=sample if quantization else None,
        )
        report = verify_tflite(path, model, sample, max_mean_keypoint_px=None)
        print(f"Wrote {path} ({path.stat().st_size / 1e6:.2f} MB)\n{report}")
        summary[name] = {
            "file": str(path),
            "max_abs_diff": report.max_heatmap_diff,
            "mean_keypoint_px": report.mean_keypoint_px,
        }
    return summary


def main():
    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    start = time.time()

    step("1/5 synthetic COCO-format data")
    data = out / "data"
    train_json = write_synthetic_coco(
        data, num_images=args.train_images, seed=args.seed, split="train"
    )
    val_json = write_synthetic_coco(
        data, num_images=args.val_images, seed=args.seed, split="val"
    )
    print(f"train: {train_json}\nval:   {val_json}")

    step(f"2/5 train {args.model} at {args.input_size} with model.fit")
    h, w = args.input_size
    model = zoo.load(args.model, input_shape=(h, w, 3), compile=False)
    model.compile(optimizer=keras.optimizers.Adam(args.lr))
    train = build_top_down_dataset(
        train_json,
        data / "images",
        model.codec,
        batch_size=args.batch_size,
        training=True,
        seed=args.seed,
    )
    # The pipeline shuffles; Keras' own shuffle does not apply to tf.data.
    model.fit(train, epochs=args.epochs, verbose=2, shuffle=False)

    step("3/5 COCO keypoint AP on the val split (pycocotools)")
    metrics = evaluate_top_down(model, val_json, data / "images")
    print(
        "AP {AP:.3f}  AP50 {AP50:.3f}  AP75 {AP75:.3f}  AR {AR:.3f}".format(
            **metrics
        )
    )

    step("4/5 TFLite export")
    # Person crops of the val split: int8 calibration and the check.
    sample = build_top_down_dataset(
        val_json, data / "images", model.codec, training=False, verbose=False
    )
    tflite = export_tflite(model, out, sample)

    step("5/5 people on val images: PosePipeline, drawn in a grid")
    # A top-down model needs person boxes: here the val split's boxes
    # written as a COCO detection-results file, the format of a person
    # detector's output (or pass detector="yolo_pose_s6" and weights).
    val = json.loads(Path(val_json).read_text())
    detections = out / "val_person_detections.json"
    detections.write_text(
        json.dumps(
            [
                {
                    "image_id": a["image_id"],
                    "category_id": 1,
                    "bbox": a["bbox"],
                    "score": 1.0,
                }
                for a in val["annotations"]
            ]
        )
    )
    names = {i["file_name"]: i["id"] for i in val["images"][:4]}
    pipeline = PosePipeline(
        model,
        detector=DetectionsFile(detections, image_ids=names),
        flip_test=True,
    )
    results = pipeline([data / "images" / name for name in names])
    drawn = [
        r.plot(read_image(data / "images" / n)) for r, n in zip(results, names)
    ]
    picture = out / "prediction.png"
    grid = draw_grid(drawn, columns=2, cell=drawn[0].shape[:2])
    if not cv2.imwrite(str(picture), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"Could not write {picture}")
    people = sum(len(r) for r in results)
    print(f"Wrote {picture} ({people} people on {len(results)} images)")

    summary = {
        "backend": keras.backend.backend(),
        "model": args.model,
        "input_size": [h, w],
        "epochs": args.epochs,
        "coco": metrics,
        "tflite": tflite,
        "seconds": round(time.time() - start, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(
        f"\nDone in {summary['seconds']} s; summary in {out / 'summary.json'}"
    )


if __name__ == "__main__":
    main()
