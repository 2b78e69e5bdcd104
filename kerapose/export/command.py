"""`kerapose export`: zoo model or .keras file -> verified .tflite or .onnx.

Everything that can be refused (backend, names, paths, options, missing
packages) is checked before the model is built. A file that fails the
check does not stay at `-o`: it is renamed `<name>.failed.tflite` (or
`.failed.onnx`), and the command says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kerapose.cli_support import check_model_name
from kerapose.cli_support import check_output_path

# Mean keypoint displacement (input pixels) the check allows by default:
# float files match to rounding; int8 moves some peaks by a heatmap pixel.
DEFAULT_MAX_KEYPOINT_PX = {None: 0.5, "fp16": 0.5, "dynamic": 2.0, "int8": 2.0}


def load_for_export(name, weights=None, input_size=None, num_keypoints=None):
    """A zoo name / preset directory, or a saved `.keras` model."""
    if str(name).endswith(".keras"):
        import keras

        import kerapose.models  # noqa: F401  (registers kerapose's classes)

        if not Path(name).is_file():
            raise FileNotFoundError(f"No model file at {name}")
        return keras.models.load_model(name, compile=False)
    from kerapose import zoo

    shape = (*input_size, 3) if input_size else None
    return zoo.load(
        name,
        weights=weights,
        input_shape=shape,
        num_keypoints=num_keypoints,
        compile=False,
    )


def coco_crops(ann_file, image_dir, codec):
    """Evaluation person crops of a COCO-format file."""
    from kerapose.data.pipelines import build_top_down_dataset

    return build_top_down_dataset(
        ann_file, image_dir, codec, batch_size=16, training=False
    )


def failed_path(path: Path) -> Path:
    """`m.tflite` -> `m.failed.tflite` (`m.onnx` -> `m.failed.onnx`):
    where a file that failed goes."""
    suffix = path.suffix
    return path.with_name(path.name[: -len(suffix)] + ".failed" + suffix)


def _check_onnx_args(args):
    if args.quantization != "float32":
        raise ValueError(
            "--format onnx writes float32 files; -q applies to TFLite. Drop "
            "-q, or quantize the .onnx file with ONNX Runtime's tools."
        )
    from kerapose.export.onnx import INSTALL_HINT
    from kerapose.export.onnx import missing_onnx_packages

    missing = missing_onnx_packages(runtime=not args.no_verify)
    if missing:
        raise RuntimeError(
            f"--format onnx needs {', '.join(missing)}: {INSTALL_HINT}"
            + (", or pass --no-verify." if missing == ["onnxruntime"] else ".")
        )


def check_export_args(args) -> Path:
    """Refuses what would fail, before anything slow; returns the output."""
    onnx = args.format == "onnx"
    if not onnx:
        from kerapose.export.backend import check_tensorflow_backend

        check_tensorflow_backend()
    suffix = ".onnx" if onnx else ".tflite"
    output = check_output_path(args.output, (suffix,), "-o")
    name = str(args.name)
    if name.endswith(".keras"):
        if not Path(name).is_file():
            raise FileNotFoundError(f"No model file at {name}")
        if args.weights or args.input_size or args.num_keypoints:
            raise ValueError(
                "--weights, --input-size and --num-keypoints apply to zoo "
                "names; a .keras file holds its weights and shapes."
            )
    else:
        check_model_name(name)
    if args.data:
        ann_file, image_dir = map(Path, args.data)
        if not ann_file.is_file():
            raise FileNotFoundError(f"--data: no annotation file {ann_file}")
        if not image_dir.is_dir():
            raise FileNotFoundError(f"--data: no image folder {image_dir}")
    if onnx:
        _check_onnx_args(args)
    elif args.quantization == "int8" and not (
        args.data or args.synthetic_calibration
    ):
        raise ValueError(
            "-q int8 measures every activation's range on calibration "
            "images: pass --data ANN_JSON IMAGE_DIR (person crops like the "
            "ones the model will see), or --synthetic-calibration to "
            "calibrate on synthetic scenes (expect lower accuracy)."
        )
    if not onnx and not args.no_verify:
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError as e:
            raise RuntimeError(
                "Checking the file needs the LiteRT interpreter: `pip install "
                "'kerapose[litert]'` (ai-edge-litert), or pass --no-verify."
            ) from e
    return output


def _run_onnx_export(args, output) -> int:
    from kerapose.export.onnx import export_onnx
    from kerapose.export.onnx import verify_onnx

    model = load_for_export(
        args.name, args.weights, args.input_size, args.num_keypoints
    )
    data = _verification_data(args, model)
    print("Converting to ONNX (dynamic batch)")
    path = export_onnx(model, output, include_decode=args.include_decode)
    return _check(args, path, model, data, None, verify_onnx, "ONNX Runtime")


def run_export(args) -> int:
    output = check_export_args(args)
    if args.format == "onnx":
        return _run_onnx_export(args, output)
    from kerapose.export.tflite import export_tflite
    from kerapose.export.verify import verify_tflite

    quantization = None if args.quantization == "float32" else args.quantization
    if quantization == "int8" and not args.data:
        print(
            "WARNING: calibrating int8 on synthetic crops "
            "(--synthetic-calibration); ranges measured on real person "
            "crops (--data) give a more accurate file.",
            file=sys.stderr,
        )
    model = load_for_export(
        args.name, args.weights, args.input_size, args.num_keypoints
    )
    data = _verification_data(args, model)
    calibrate = ""
    if quantization == "int8":
        calibrate = f", calibrating on up to {args.num_calibration} images"
    print(f"Converting to TFLite{calibrate}")
    path = export_tflite(
        model,
        output,
        quantization=quantization,
        representative_data=data if quantization == "int8" else None,
        num_calibration_samples=args.num_calibration,
        include_decode=args.include_decode,
        progress=not args.quiet,
    )
    return _check(args, path, model, data, quantization, verify_tflite)


def _verification_data(args, model):
    """--data as the model takes it: person crops, or whole images."""
    if not args.data:
        return None
    ann_file, image_dir = args.data
    if getattr(model, "task", None) == "single_stage":
        # Whole letterboxed images in [0, 1], not person crops.
        from kerapose.export.yolo_pose import coco_images

        return coco_images(
            ann_file,
            image_dir,
            model.input_shape[1:3],
            max(args.num_calibration, args.num_verify),
        )
    return coco_crops(ann_file, image_dir, model.codec)


def _check(args, path, model, data, quantization, verify, runtime="LiteRT"):
    """Verifies the written file; moves it aside when it fails."""
    size = f"{path.stat().st_size / 1e6:.2f} MB"
    if args.no_verify:
        print(f"Wrote {path} ({size}; not checked: --no-verify)")
        return 0
    print(f"Exported {size}; checking it in {runtime}")
    threshold = args.max_keypoint_px
    if threshold is None:
        threshold = DEFAULT_MAX_KEYPOINT_PX[quantization]
    try:
        report = verify(
            path,
            model,
            images=data,
            num_images=args.num_verify,
            max_mean_keypoint_px=threshold,
            max_heatmap_diff=args.max_heatmap_diff,
            score_threshold=args.score_threshold,
            raise_on_failure=False,
            progress=not args.quiet,
        )
    except Exception:
        print(f"Moved the unchecked file to {_set_aside(path)}.")
        raise
    print(report)
    if report.num_keypoints == 0:
        print(
            f"  (no keypoint scored above {args.score_threshold}: is the "
            "model trained? Only the heatmaps were compared.)"
        )
    if not report.passed:
        print(
            f"The file failed the check: moved it to {_set_aside(path)} "
            f"(nothing is left at {path})."
        )
        return 1
    print(f"Wrote {path} ({size})")
    return 0


def _set_aside(path):
    return path.replace(failed_path(path))


def add_export_parser(sub):
    p = sub.add_parser(
        "export",
        help="export to TFLite (or ONNX) and check the file",
        description="Export to a .tflite file and check it against the "
        "Keras model in LiteRT (--format onnx: a .onnx file with a dynamic "
        "batch, checked in ONNX Runtime). Exit status 1 when the check "
        "fails: the file is then renamed NAME.failed.tflite (.failed.onnx) "
        "and nothing is left at -o. TFLite needs KERAS_BACKEND=tensorflow; "
        "ONNX runs on any backend (pip install 'kerapose[onnx]').",
    )
    p.add_argument("name", help="zoo name, preset directory or .keras file")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="*.tflite (*.onnx with --format onnx); its folder is created",
    )
    p.add_argument(
        "--format",
        choices=["tflite", "onnx"],
        default="tflite",
        help="tflite (default) or onnx (float32, dynamic batch)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="for a zoo name: 'default' or a tag, a kerapose or Keras "
        ".weights.h5 (e.g. best.weights.h5 of examples/train_top_down.py), "
        "an official checkpoint or a URL; default: random weights",
    )
    p.add_argument(
        "--quantization",
        "-q",
        choices=["float32", "fp16", "dynamic", "int8"],
        default="float32",
        help="float32 (default), fp16 weights, dynamic (int8 weights) or "
        "int8 (full integer; needs --data or --synthetic-calibration)",
    )
    p.add_argument(
        "--data",
        nargs=2,
        metavar=("ANN_JSON", "IMAGE_DIR"),
        help="COCO-format set whose person crops calibrate int8 and are "
        "used for the check (default for the check: synthetic crops)",
    )
    p.add_argument(
        "--synthetic-calibration",
        action="store_true",
        help="let -q int8 calibrate on synthetic crops when there is no "
        "--data (less accurate)",
    )
    p.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="input size of the exported graph, for a zoo name; default: "
        "the tag's",
    )
    p.add_argument(
        "--num-keypoints",
        type=int,
        help="keypoints of the --weights file when not the preset's (e.g. "
        "16 for a model trained on MPII by examples/train_top_down.py)",
    )
    p.add_argument(
        "--include-decode",
        action="store_true",
        help="decode keypoints in the graph: output (1, K, 3) x, y, score "
        "(ONNX: top-down models only, (batch, K, 3))",
    )
    p.add_argument(
        "--num-calibration",
        type=int,
        default=64,
        help="int8 calibration images; default 64",
    )
    p.add_argument(
        "--num-verify",
        type=int,
        default=16,
        help="images the check compares; default 16",
    )
    p.add_argument(
        "--max-keypoint-px",
        type=float,
        default=None,
        help="fail when the mean keypoint displacement vs Keras is larger "
        "(input pixels; default 0.5 float, 2.0 dynamic/int8)",
    )
    p.add_argument(
        "--max-heatmap-diff",
        type=float,
        default=None,
        help="fail when the largest heatmap difference vs Keras is larger; "
        "default: not checked",
    )
    p.add_argument(
        "--score-threshold",
        type=float,
        default=0.2,
        help="compare keypoints the Keras model scores above this",
    )
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="write the file without the LiteRT / ONNX Runtime check",
    )
    return p
