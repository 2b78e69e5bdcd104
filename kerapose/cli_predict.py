"""`kerapose predict`: an image, a folder, a glob or a video in; people out.

Paths are checked before any model loads. Top-down models take person
boxes from `--detector` (a YOLO-Pose zoo name or a COCO detection-results
file) or `--boxes` (one image); without either the whole image is one
person. Exit status: 0 done, 1 some images could not be read (listed), 2
bad input.
"""

import json
from pathlib import Path

from kerapose.cli_support import IMAGE_SUFFIXES
from kerapose.cli_support import VIDEO_FOURCC
from kerapose.cli_support import VIDEO_SUFFIXES
from kerapose.cli_support import check_model_name
from kerapose.cli_support import check_output_path
from kerapose.cli_support import check_written


def _source_kind(source):
    path = Path(source)
    if path.suffix.lower() in VIDEO_SUFFIXES and not path.is_dir():
        return "video"
    if path.is_dir() or set("*?[") & set(str(source)):
        return "many"
    return "image"


def _check_paths(args):
    """Every input and output check, before the model loads."""
    check_model_name(args.name)
    if args.detector and not args.detector.endswith(".json"):
        check_model_name(args.detector)
    elif args.detector and not Path(args.detector).is_file():
        raise FileNotFoundError(f"Detections file not found: {args.detector}")
    source = Path(args.source)
    if args.kind == "many":
        from kerapose.inference.sources import list_sources

        args.entries = list_sources(args.source)
    elif not source.is_file():
        kind = "Video" if args.kind == "video" else "Image"
        raise FileNotFoundError(f"{kind} file not found: {source}")
    if args.name_is_dir and (args.num_keypoints or args.input_size):
        raise ValueError(
            "--num-keypoints and --input-size apply to zoo names; the preset "
            f"directory {args.name} fixes both."
        )
    if args.boxes and args.kind != "image":
        raise ValueError(
            "--boxes applies to one image; use --detector for folders and "
            "videos."
        )
    if args.boxes and args.detector:
        raise ValueError("Give --boxes or --detector, not both.")
    if args.smooth and args.track == "none":
        raise ValueError("--smooth follows people by track: drop --track none.")
    if args.kind == "video":
        from kerapose.inference.video import open_capture

        open_capture(source).release()
    if args.out:
        _check_out(args, source)
    if args.json:
        args.json = check_output_path(args.json, (".json",), "--json")


def _check_out(args, source):
    if args.kind == "many":
        out = Path(args.out).expanduser()
        if out.suffix:
            raise ValueError(
                f"--out {out}: the source is several images, so --out is a "
                "folder for the drawn images (no file extension)."
            )
        # The folder is checked as its first file would be.
        check_output_path(out / "probe.jpg", IMAGE_SUFFIXES, "--out")
        args.out = out
        return
    suffixes = VIDEO_SUFFIXES if args.kind == "video" else IMAGE_SUFFIXES
    option = (
        "--out (the source is a video)" if args.kind == "video" else "--out"
    )
    args.out = check_output_path(args.out, suffixes, option)
    if args.out.resolve() == source.resolve():
        raise ValueError(f"--out {args.out} would overwrite the input.")
    if args.kind == "video":  # the codec, on a small file then removed
        from kerapose.inference.video import open_writer

        probe = args.out.with_name(f".probe_{args.out.name}")
        open_writer(probe, 25.0, (64, 64)).release()
        probe.unlink(missing_ok=True)


def _load_models(args):
    from kerapose import zoo

    shape = (*args.input_size, 3) if args.input_size else None
    extra = {}
    if not args.name_is_dir:
        extra = {"num_keypoints": args.num_keypoints, "input_shape": shape}
    model = zoo.load(args.name, weights=args.weights, compile=False, **extra)
    detector = args.detector
    if detector and not detector.endswith(".json"):
        detector = zoo.load(
            detector, weights=args.detector_weights, compile=False
        )
    return model, detector


def _write_image(path, rgb):
    import cv2

    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), bgr):
        raise RuntimeError(f"OpenCV could not write the image {path}.")
    return check_written(path, "image")


def _image_id(name, index):
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else index


def _one_image(pipe, args):
    from kerapose.inference import read_image
    from kerapose.inference.top_down import predict_images

    image = read_image(args.source)
    if args.boxes_given is not None:
        boxes, scores = args.boxes_given
        result = predict_images(
            pipe.pose,
            [image],
            [boxes],
            [scores],
            flip_test=args.flip,
        )[0]
    else:
        result = pipe.predict([image], [str(args.source)])[0]
    for i, (kpts, score) in enumerate(zip(result.keypoints, result.scores)):
        print(f"person {i}: score {score:.3f}, {len(kpts)} keypoints")
    if args.out:
        drawn = _write_image(args.out, result.plot(image, args.threshold))
        print(f"Wrote {drawn}")
    return result.to_coco(args.image_id), 0


def _many_images(pipe, args):
    from kerapose.inference import read_image

    results = pipe([item for _, item in args.entries])
    coco = []
    for i, (name, result) in enumerate(zip(pipe.names, results)):
        coco += result.to_coco(_image_id(name, i))
        print(f"{name}: {len(result)} people")
        if args.out:
            drawn = result.plot(read_image(name), args.threshold)
            _write_image(args.out / f"{Path(name).stem}.jpg", drawn)
    if args.out and results:
        print(f"Wrote {len(results)} drawn images to {args.out}")
    print(pipe.report.summary())
    for name, reason in pipe.report.skipped:
        print(f"skipped {name}: {reason}")
    return coco, 1 if pipe.report.skipped else 0


def _video(pipe, args):
    from kerapose.inference.smoothing import KeypointSmoother
    from kerapose.inference.tracking import PoseTracker
    from kerapose.inference.video import predict_video

    tracker = None if args.track == "none" else PoseTracker(match=args.track)
    smoother = None
    if args.smooth:
        smoother = KeypointSmoother(min_cutoff=args.min_cutoff, beta=args.beta)
    results = predict_video(
        pipe,
        args.source,
        out=args.out,
        tracker=tracker,
        smoother=smoother,
        threshold=args.threshold,
        progress=not args.quiet,
    )
    coco = []
    for frame, result in enumerate(results):
        coco += result.to_coco(frame)
    print(f"{len(results)} frames, {len(coco)} people")
    if args.out:
        print(f"Wrote {check_written(args.out, 'video')}")
    return coco, 0


def run_predict(args):
    args.kind = _source_kind(args.source)
    args.name_is_dir = Path(args.name).is_dir()
    _check_paths(args)
    # A bad boxes file or image fails before the model loads.
    args.boxes_given = None
    if args.boxes:
        from kerapose.inference import read_image
        from kerapose.inference import validate_boxes
        from kerapose.inference.boxes import read_boxes_file

        boxes, scores = read_boxes_file(args.boxes)
        validate_boxes(boxes, read_image(args.source).shape)
        args.boxes_given = (boxes, scores)
    model, detector = _load_models(args)
    from kerapose.inference.pipeline import PosePipeline

    if (
        args.boxes_given is not None
        and getattr(model, "task", "") != "top_down"
    ):
        raise ValueError(
            f"{type(model).__name__} is a "
            f"{model.task.replace('_', '-')} model: it finds the people "
            "itself and takes no boxes. Drop --boxes."
        )
    pipe = PosePipeline(
        model,
        detector=detector,
        min_box_score=args.min_box_score,
        flip_test=args.flip,
        batch_size=args.batch_size,
    )
    run = {"image": _one_image, "many": _many_images, "video": _video}
    coco, status = run[args.kind](pipe, args)
    if args.json:
        args.json.write_text(json.dumps(coco))
        print(f"Wrote {check_written(args.json, 'JSON file')}")
    return status


def add_predict_parser(sub):
    p = sub.add_parser(
        "predict",
        help="keypoints on images, a folder or a video",
        description="Keypoints of the people in an image, a folder or glob "
        "of images, or a video (tracked across frames). Bottom-up and "
        "single-stage models find the people themselves. Top-down models "
        "take person boxes from --detector or --boxes; without them the "
        "whole image or frame is one person box. Exit status 1 when some "
        "images could not be read (they are listed).",
    )
    p.add_argument("name", help="zoo name or preset directory")
    p.add_argument(
        "source",
        help="image file, folder of images, glob pattern ('photos/*.jpg', "
        f"quoted), or a video ({', '.join(VIDEO_FOURCC)})",
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
        "--detector",
        help="person boxes for a top-down model: a YOLO-Pose zoo name "
        "(e.g. yolo_pose_s6, with --detector-weights) or a COCO "
        "detection-results .json (images matched by the id in their file "
        "name)",
    )
    p.add_argument(
        "--detector-weights",
        default=None,
        help="weights of the --detector model (as --weights)",
    )
    p.add_argument(
        "--min-box-score",
        type=float,
        default=0.0,
        help="drop detector boxes scored below this; default 0",
    )
    p.add_argument(
        "--boxes",
        help="one image only: JSON file of [x, y, w, h] person boxes, or "
        "of COCO detections ({'bbox': [x, y, w, h], ...}); default: the "
        "whole image",
    )
    p.add_argument("--flip", action="store_true", help="flip test")
    p.add_argument(
        "--out",
        help="where to write the drawing: an image file (.jpg, .png, ...) "
        "for an image, a folder for several images, a video file (.mp4, "
        ".avi, ...) for a video; folders are created",
    )
    p.add_argument(
        "--json",
        help="where to write COCO-format results (.json); image_id is the "
        "number an image file is named by, or --image-id, or the frame",
    )
    p.add_argument(
        "--image-id",
        type=int,
        default=0,
        help="image_id of the COCO results of a single image; default 0",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.3,
        help="draw keypoints scored above this; default 0.3",
    )
    p.add_argument(
        "--track",
        choices=("oks", "iou", "none"),
        default="oks",
        help="video: match people between frames by keypoint similarity "
        "(oks, default) or box overlap (iou), or give no track ids (none)",
    )
    p.add_argument(
        "--smooth",
        action="store_true",
        help="video: smooth keypoints over time (One-Euro filter)",
    )
    p.add_argument(
        "--min-cutoff",
        type=float,
        default=1.0,
        help="One-Euro minimum cutoff frequency in Hz: lower is smoother "
        "at rest; default 1.0",
    )
    p.add_argument(
        "--beta",
        type=float,
        default=0.0,
        help="One-Euro speed coefficient: higher lags less on fast "
        "motion; default 0.0",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="images or frames per network step (their crops go "
        "together); default 8",
    )
    return p
