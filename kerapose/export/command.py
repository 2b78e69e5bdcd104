"""`kerapose export`: zoo model or .keras file -> verified .tflite file."""

from __future__ import annotations

from pathlib import Path

# Mean keypoint displacement (input pixels) the check allows by default:
# float files match to rounding; int8 moves some peaks by a heatmap pixel.
DEFAULT_MAX_KEYPOINT_PX = {None: 0.5, "fp16": 0.5, "dynamic": 2.0, "int8": 2.0}


def load_for_export(name, weights=None, input_size=None):
    """A zoo name / preset directory, or a saved `.keras` model."""
    if str(name).endswith(".keras"):
        import keras

        if not Path(name).is_file():
            raise FileNotFoundError(f"No model file at {name}")
        return keras.models.load_model(name, compile=False)
    from kerapose import zoo

    shape = (*input_size, 3) if input_size else None
    return zoo.load(name, weights=weights, input_shape=shape, compile=False)


def coco_crops(ann_file, image_dir, codec):
    """Evaluation person crops of a COCO-format file."""
    from kerapose.data.pipelines import build_top_down_dataset

    return build_top_down_dataset(
        ann_file, image_dir, codec, batch_size=16, training=False
    )


def run_export(args) -> int:
    from kerapose.export.tflite import export_tflite
    from kerapose.export.verify import verify_tflite

    quantization = None if args.quantization == "float32" else args.quantization
    model = load_for_export(args.name, args.weights, args.input_size)
    data = None
    if args.data:
        ann_file, image_dir = args.data
        data = coco_crops(ann_file, image_dir, model.codec)
    path = export_tflite(
        model,
        args.output,
        quantization=quantization,
        representative_data=data if quantization == "int8" else None,
        num_calibration_samples=args.num_calibration,
        include_decode=args.include_decode,
    )
    print(f"Wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    if args.no_verify:
        return 0
    threshold = args.max_keypoint_px
    if threshold is None:
        threshold = DEFAULT_MAX_KEYPOINT_PX[quantization]
    report = verify_tflite(
        path,
        model,
        images=data,
        num_images=args.num_verify,
        max_mean_keypoint_px=threshold,
        max_heatmap_diff=args.max_heatmap_diff,
        score_threshold=args.score_threshold,
        raise_on_failure=False,
    )
    print(report)
    if report.num_keypoints == 0:
        print(
            f"  (no keypoint scored above {args.score_threshold}: is the "
            "model trained? Only the heatmaps were compared.)"
        )
    return 0 if report.passed else 1


def add_export_parser(sub):
    p = sub.add_parser("export", help="export to TFLite and check it in LiteRT")
    p.add_argument("name", help="zoo name, preset directory or .keras file")
    p.add_argument("-o", "--output", required=True, help="*.tflite")
    p.add_argument("--weights", default=None)
    p.add_argument(
        "--quantization",
        "-q",
        choices=["float32", "fp16", "dynamic", "int8"],
        default="float32",
    )
    p.add_argument(
        "--data",
        nargs=2,
        metavar=("ANN_JSON", "IMAGE_DIR"),
        help="COCO-format set whose person crops calibrate int8 and are "
        "used for the check (default: synthetic crops)",
    )
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"))
    p.add_argument(
        "--include-decode",
        action="store_true",
        help="decode keypoints in the graph: output (1, K, 3) x, y, score",
    )
    p.add_argument("--num-calibration", type=int, default=64)
    p.add_argument("--num-verify", type=int, default=16)
    p.add_argument(
        "--max-keypoint-px",
        type=float,
        default=None,
        help="fail when the mean keypoint displacement vs Keras is larger "
        "(input pixels; default 0.5 float, 2.0 dynamic/int8)",
    )
    p.add_argument("--max-heatmap-diff", type=float, default=None)
    p.add_argument(
        "--score-threshold",
        type=float,
        default=0.2,
        help="compare keypoints the Keras model scores above this",
    )
    p.add_argument("--no-verify", action="store_true")
    return p
