"""The `kerapose` command line: list, describe, convert, predict, export."""

import argparse
import json
import os
import sys
from pathlib import Path

# TensorFlow's C++ start-up chatter is noise on a command line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def _cmd_list(args):
    from kerapose import zoo

    for name in zoo.list_models(args.pattern, pretrained=args.pretrained):
        print(name)


def _cmd_describe(args):
    from kerapose import zoo

    info = zoo.describe(args.name)
    info.pop("config")
    print(json.dumps(info, indent=2))


def _cmd_convert(args):
    from kerapose import zoo
    from kerapose.convert import convert_checkpoint

    model = zoo.load(args.name, num_keypoints=args.num_keypoints, compile=False)
    skip = model.head_prefixes if args.skip_head else ()
    report = convert_checkpoint(
        model, args.checkpoint, strict=not args.no_strict, skip_prefixes=skip
    )
    print(report)
    out = zoo.save_weights(model, args.output)
    print(f"Wrote {out}")


def _load_boxes(path):
    boxes = json.loads(Path(path).read_text())
    return [b["bbox"] if isinstance(b, dict) else b for b in boxes]


def _predict_video(model, args):
    import cv2

    from kerapose.inference import predict_image

    capture = cv2.VideoCapture(str(args.source))
    if not capture.isOpened():
        raise SystemExit(f"Cannot open video {args.source}.")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer, results, frame_id = None, [], 0
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
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                writer = cv2.VideoWriter(str(args.out), fourcc, fps, (w, h))
            drawn = result.plot(rgb, threshold=args.threshold)
            writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        frame_id += 1
    capture.release()
    if writer is not None:
        writer.release()
    print(f"{frame_id} frames, {len(results)} people")
    return results


def _cmd_predict(args):
    import cv2

    from kerapose import zoo
    from kerapose.inference import predict_image
    from kerapose.inference import read_image

    model = zoo.load(args.name, weights=args.weights, compile=False)
    if Path(args.source).suffix.lower() in VIDEO_SUFFIXES:
        results = _predict_video(model, args)
    else:
        image = read_image(args.source)
        boxes = _load_boxes(args.boxes) if args.boxes else None
        result = predict_image(model, image, boxes=boxes, flip_test=args.flip)
        results = result.to_coco(args.image_id)
        for i, (kpts, score) in enumerate(zip(result.keypoints, result.scores)):
            print(f"person {i}: score {score:.3f}, {len(kpts)} keypoints")
        if args.out:
            drawn = result.plot(image, threshold=args.threshold)
            cv2.imwrite(str(args.out), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            print(f"Wrote {args.out}")
    if args.json:
        Path(args.json).write_text(json.dumps(results))
        print(f"Wrote {args.json}")


def _cmd_export(args):
    from kerapose.export.command import run_export

    return run_export(args)


def build_parser():
    parser = argparse.ArgumentParser(prog="kerapose", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list zoo models")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--pretrained", action="store_true")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("describe", help="show a zoo entry")
    p.add_argument("name")
    p.set_defaults(func=_cmd_describe)

    p = sub.add_parser("convert", help="convert an official checkpoint")
    p.add_argument("name", help="zoo name, e.g. hrnet_w32.coco_256x192")
    p.add_argument("checkpoint", help=".pth, .npz or .safetensors file")
    p.add_argument("-o", "--output", required=True, help="*.weights.h5")
    p.add_argument("--num-keypoints", type=int, default=None)
    p.add_argument(
        "--skip-head", action="store_true", help="load the backbone only"
    )
    p.add_argument(
        "--no-strict",
        action="store_true",
        help="load what fits and print the report (default: refuse)",
    )
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("predict", help="keypoints on an image or video")
    p.add_argument("name", help="zoo name or preset directory")
    p.add_argument("source", help="image or video file")
    p.add_argument("--weights", default=None)
    p.add_argument("--boxes", help="JSON list of [x, y, w, h] person boxes")
    p.add_argument("--flip", action="store_true", help="flip test")
    p.add_argument("--out", help="where to write the drawn image/video")
    p.add_argument("--json", help="where to write COCO-format results")
    p.add_argument("--image-id", type=int, default=0)
    p.add_argument("--threshold", type=float, default=0.3)
    p.set_defaults(func=_cmd_predict)

    from kerapose.export.command import add_export_parser

    add_export_parser(sub).set_defaults(func=_cmd_export)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except (ValueError, FileNotFoundError, TypeError, RuntimeError) as e:
        print(f"kerapose {args.command}: error: {e}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
