"""The `kerapose` command line: list, describe, convert, predict, export.

`list`, `describe` and `--help` read the zoo's data and import neither
Keras nor TensorFlow. The other commands check their input and output
paths before loading anything slow, and keep TensorFlow's log lines off the
terminal unless `--verbose`. Exit status: 0 done, 1 nothing listed or a
failed TFLite check, 2 an error (the message says what to do).
"""

import argparse
import json
import os
import sys
from pathlib import Path

from kerapose.cli_support import IMAGE_SUFFIXES
from kerapose.cli_support import check_model_name
from kerapose.cli_support import check_output_path
from kerapose.cli_support import check_written
from kerapose.cli_support import quiet_native_logs

# Containers OpenCV reads; the codec OpenCV writes into each.
VIDEO_FOURCC = {
    ".mp4": "mp4v",
    ".avi": "MJPG",
    ".mov": "mp4v",
    ".mkv": "mp4v",
    ".webm": "VP80",
}
VIDEO_SUFFIXES = tuple(VIDEO_FOURCC)


def _cmd_list(args):
    from kerapose.zoo import list_models

    names = list_models(args.pattern, pretrained=args.pretrained)
    for name in names:
        print(name)
    if names:
        return 0
    what = f" matching '{args.pattern}'" if args.pattern != "*" else ""
    if args.pretrained:
        from kerapose.zoo import kerapose_home

        print(
            f"No pretrained weights{what} can be loaded: none are hosted for "
            "download yet, and none are in "
            f"{kerapose_home() / 'weights'}. Convert an official checkpoint "
            "there with `kerapose convert` (see `kerapose describe NAME`).",
            file=sys.stderr,
        )
    else:
        print(
            f"No zoo model{what}. The pattern is a substring ('rsn') or a "
            "shell pattern ('hrnet_w*'); `kerapose list` shows all.",
            file=sys.stderr,
        )
    return 1


def _cmd_describe(args):
    from kerapose.zoo import describe

    info = describe(args.name)
    info.pop("config")
    print(json.dumps(info, indent=2))


def _cmd_convert(args):
    check_model_name(args.name)
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"No checkpoint file at {args.checkpoint}.")
    output = check_output_path(args.output, (".weights.h5",), "-o")
    from kerapose import zoo
    from kerapose.convert import convert_checkpoint

    model = zoo.load(args.name, num_keypoints=args.num_keypoints, compile=False)
    skip = model.head_prefixes if args.skip_head else ()
    report = convert_checkpoint(
        model, args.checkpoint, strict=not args.no_strict, skip_prefixes=skip
    )
    print(report)
    out = check_written(zoo.save_weights(model, output), "weights file")
    print(f"Wrote {out}")


def _load_boxes(path):
    from kerapose.inference.boxes import read_boxes_file

    return read_boxes_file(path)  # (boxes, scores or None)


def _check_predict_paths(args):
    """Input and output checks of `predict`, before the model loads."""
    check_model_name(args.name)
    source = Path(args.source)
    if not source.is_file():
        kind = "Video" if args.video else "Image"
        raise FileNotFoundError(f"{kind} file not found: {source}")
    if args.name_is_dir and (args.num_keypoints or args.input_size):
        raise ValueError(
            "--num-keypoints and --input-size apply to zoo names; the preset "
            f"directory {args.name} fixes both."
        )
    if args.boxes and args.video:
        raise ValueError(
            "--boxes applies to an image; each video frame is one person box."
        )
    if args.video:
        _open_capture(source).release()
    if args.out:
        suffixes = VIDEO_SUFFIXES if args.video else IMAGE_SUFFIXES
        option = "--out (the source is a video)" if args.video else "--out"
        args.out = check_output_path(args.out, suffixes, option)
        if args.out.resolve() == source.resolve():
            raise ValueError(f"--out {args.out} would overwrite the input.")
        if args.video:  # the codec, on a small file that is then removed
            probe = args.out.with_name(f".probe_{args.out.name}")
            _open_writer(probe, 25.0, (64, 64)).release()
            probe.unlink(missing_ok=True)
    if args.json:
        args.json = check_output_path(args.json, (".json",), "--json")


def _open_capture(path):
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(
            f"Cannot open video {path}: not a video, or in a codec OpenCV "
            "cannot decode."
        )
    return capture


def _open_writer(path, fps, size):
    import cv2

    fourcc = cv2.VideoWriter_fourcc(*VIDEO_FOURCC[path.suffix.lower()])
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise RuntimeError(
            f"OpenCV cannot write the video {path} ({path.suffix}); try "
            ".mp4 or .avi."
        )
    return writer


def _predict_video(model, args):
    import cv2
    import keras

    from kerapose.inference import predict_image

    capture = _open_capture(args.source)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    bar = None
    if not args.quiet:
        bar = keras.utils.Progbar(
            total if total > 0 else None, unit_name="frame"
        )
    writer, results, frame_id = None, [], 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            result = predict_image(model, rgb, flip_test=args.flip)
            results += result.to_coco(frame_id)
            if args.out:
                if writer is None:
                    h, w = rgb.shape[:2]
                    writer = _open_writer(args.out, fps, (w, h))
                drawn = result.plot(rgb, threshold=args.threshold)
                writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            frame_id += 1
            if bar is not None:
                bar.update(frame_id)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if bar is not None and frame_id != total:
        bar.update(frame_id, finalize=True)
    if frame_id == 0:
        raise ValueError(
            f"Read no frames from {args.source}: the file is empty or in a "
            "codec OpenCV cannot decode."
        )
    print(f"{frame_id} frames, {len(results)} people")
    if args.out:
        print(f"Wrote {check_written(args.out, 'video')}")
    return results


def _predict_image(model, args, image, boxes, scores):
    import cv2

    from kerapose.inference import predict_image

    result = predict_image(
        model, image, boxes=boxes, box_scores=scores, flip_test=args.flip
    )
    for i, (kpts, score) in enumerate(zip(result.keypoints, result.scores)):
        print(f"person {i}: score {score:.3f}, {len(kpts)} keypoints")
    if args.out:
        drawn = result.plot(image, threshold=args.threshold)
        bgr = cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(args.out), bgr):
            raise RuntimeError(f"OpenCV could not write the image {args.out}.")
        print(f"Wrote {check_written(args.out, 'image')}")
    return result.to_coco(args.image_id)


def _cmd_predict(args):
    args.video = Path(args.source).suffix.lower() in VIDEO_SUFFIXES
    args.name_is_dir = Path(args.name).is_dir()
    _check_predict_paths(args)
    # A bad boxes file or image fails before the model loads.
    boxes, scores = _load_boxes(args.boxes) if args.boxes else (None, None)
    from kerapose import zoo
    from kerapose.inference import read_image
    from kerapose.inference import validate_boxes

    image = None if args.video else read_image(args.source)
    if boxes is not None:
        validate_boxes(boxes, image.shape)
    shape = (*args.input_size, 3) if args.input_size else None
    extra = {}
    if not args.name_is_dir:
        extra = {"num_keypoints": args.num_keypoints, "input_shape": shape}
    model = zoo.load(args.name, weights=args.weights, compile=False, **extra)
    if args.video:
        results = _predict_video(model, args)
    else:
        results = _predict_image(model, args, image, boxes, scores)
    if args.json:
        args.json.write_text(json.dumps(results))
        print(f"Wrote {check_written(args.json, 'JSON file')}")


def _cmd_export(args):
    from kerapose.export.command import run_export

    return run_export(args)


def _add_logging_options(parser):
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's start-up and converter log lines",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kerapose",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "list",
        help="list zoo models",
        description="List zoo model names; exits 1 when none match.",
    )
    p.add_argument(
        "pattern",
        nargs="?",
        default="*",
        help="a substring ('rsn') or a shell pattern with * ? [ "
        "('hrnet_w*'); default: all",
    )
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="list the arch.tag names whose weights can be loaded: a file "
        "in $KERAPOSE_HOME/weights (default ~/.kerapose) or a download URL",
    )
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("describe", help="show a zoo entry")
    p.add_argument(
        "name",
        help="zoo name, 'arch' or 'arch.tag' (e.g. hrnet_w32.coco_256x192): "
        "family, paper, tags, metrics, official checkpoints",
    )
    p.set_defaults(func=_cmd_describe)

    p = sub.add_parser("convert", help="convert an official checkpoint")
    p.add_argument("name", help="zoo name, e.g. hrnet_w32.coco_256x192")
    p.add_argument("checkpoint", help=".pth, .npz or .safetensors file")
    p.add_argument("-o", "--output", required=True, help="*.weights.h5")
    p.add_argument(
        "--num-keypoints",
        type=int,
        default=None,
        help="keypoints of the checkpoint's head when not the preset's "
        "(e.g. 16 for MPII)",
    )
    p.add_argument(
        "--skip-head", action="store_true", help="load the backbone only"
    )
    p.add_argument(
        "--no-strict",
        action="store_true",
        help="load what fits and print the report (default: refuse)",
    )
    _add_logging_options(p)
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser(
        "predict",
        help="keypoints on an image or video",
        description="Keypoints of the people in an image or a video. "
        "Without --boxes (and always for a video) the whole image or frame "
        "is one person box: give person boxes from a detector for images "
        "with several people or small people.",
    )
    p.add_argument("name", help="zoo name or preset directory")
    p.add_argument(
        "source",
        help=f"image file, or a video ({', '.join(VIDEO_SUFFIXES)})",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="'default' or a tag (a file in $KERAPOSE_HOME/weights), a "
        "kerapose or Keras .weights.h5 (e.g. best.weights.h5 of "
        "examples/train_top_down.py), an official checkpoint or a URL; "
        "default: random weights",
    )
    p.add_argument(
        "--num-keypoints",
        type=int,
        default=None,
        help="keypoints of the model's head when not the preset's (e.g. "
        "the count the --weights were trained with)",
    )
    p.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="network input size when not the tag's (e.g. the size the "
        "--weights were trained at)",
    )
    p.add_argument(
        "--boxes",
        help="JSON file: a list of [x, y, w, h] person boxes, or of COCO "
        "detections ({'bbox': [x, y, w, h], ...}); default: the whole image",
    )
    p.add_argument("--flip", action="store_true", help="flip test")
    p.add_argument(
        "--out",
        help="where to write the drawn image (.jpg, .png, ...) or video "
        "(.mp4, .avi, ...); its folder is created",
    )
    p.add_argument("--json", help="where to write COCO-format results (.json)")
    p.add_argument(
        "--image-id",
        type=int,
        default=0,
        help="image_id of the COCO results of an image (video: frame "
        "number); default 0",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.3,
        help="draw keypoints scored above this; default 0.3",
    )
    _add_logging_options(p)
    p.set_defaults(func=_cmd_predict)

    from kerapose.export.command import add_export_parser

    p = add_export_parser(sub)
    _add_logging_options(p)
    p.set_defaults(func=_cmd_export)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    quiet_logs = not getattr(args, "verbose", True)
    with quiet_native_logs(quiet_logs):
        try:
            status = args.func(args)
        except BrokenPipeError:
            # The reader closed the pipe (`kerapose list | head`): stop.
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            return 1
        except (ValueError, OSError, TypeError, RuntimeError) as e:
            print(f"kerapose {args.command}: error: {e}", file=sys.stderr)
            return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
