"""`kerapose eval`: COCO keypoint AP of a model on an annotation file.

Dispatches on the model's task to the evaluator the official code's test
matches: top-down (ground-truth or detector boxes), bottom-up (tag
grouping), single-stage (YOLO-Pose, keypoint and box AP). Paths are checked
before the model loads.
"""

import json
from pathlib import Path

from kerapose.cli_support import check_model_name
from kerapose.cli_support import check_output_path
from kerapose.cli_support import check_written


def _check_paths(args):
    check_model_name(args.name)
    if not Path(args.annotations).is_file():
        raise FileNotFoundError(
            f"Annotation file not found: {args.annotations}"
        )
    if not Path(args.images).is_dir():
        raise FileNotFoundError(f"Image folder not found: {args.images}")
    if args.detections and not Path(args.detections).is_file():
        raise FileNotFoundError(f"Detections file not found: {args.detections}")
    if args.results:
        args.results = check_output_path(args.results, (".json",), "--results")
    if args.metrics:
        args.metrics = check_output_path(args.metrics, (".json",), "--metrics")


def run_eval(args):
    _check_paths(args)
    from kerapose import zoo

    shape = (*args.input_size, 3) if args.input_size else None
    model = zoo.load(
        args.name, weights=args.weights, input_shape=shape, compile=False
    )
    task = getattr(model, "task", "top_down")
    if args.detections and task != "top_down":
        raise ValueError(
            f"--detections is for top-down models; {args.name} is "
            f"{task.replace('_', '-')} and finds the people itself."
        )
    common = dict(results_file=args.results, verbose=0 if args.quiet else 1)
    if task == "top_down":
        from kerapose.eval.top_down import evaluate_top_down

        metrics = evaluate_top_down(
            model,
            args.annotations,
            args.images,
            det_file=args.detections,
            flip_test=args.flip,
            **common,
        )
    elif task == "bottom_up":
        from kerapose.eval.bottom_up import evaluate_bottom_up

        metrics = evaluate_bottom_up(
            model, args.annotations, args.images, flip=args.flip, **common
        )
    else:
        from kerapose.eval.single_stage import evaluate_single_stage

        metrics = evaluate_single_stage(
            model, args.annotations, args.images, **common
        )
    for key, value in metrics.items():
        print(f"{key}: {value:.4f}")
    if args.results:
        print(f"Wrote {check_written(args.results, 'results file')}")
    if args.metrics:
        args.metrics.write_text(json.dumps(metrics, indent=2))
        print(f"Wrote {check_written(args.metrics, 'metrics file')}")
    return 0


def add_eval_parser(sub):
    p = sub.add_parser(
        "eval",
        help="COCO keypoint AP on an annotation file",
        description="COCO keypoint AP (pycocotools) of a model on a "
        "COCO-format annotation file and its images, as the official test "
        "computes it: top-down on ground-truth boxes or --detections, "
        "bottom-up with tag grouping, YOLO-Pose with keypoint and box AP.",
    )
    p.add_argument("name", help="zoo name or preset directory")
    p.add_argument("annotations", help="COCO keypoint annotation file (.json)")
    p.add_argument("images", help="folder of the annotation file's images")
    p.add_argument(
        "--weights",
        default=None,
        help="weights as for `kerapose predict` (a tag, a .weights.h5, an "
        "official checkpoint); default: random weights",
    )
    p.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="network input size when not the tag's",
    )
    p.add_argument(
        "--detections",
        help="top-down: COCO detection-results file of person boxes "
        "(default: the ground-truth boxes)",
    )
    p.add_argument(
        "--flip",
        action="store_true",
        help="flip test (top-down and bottom-up)",
    )
    p.add_argument("--results", help="also write the COCO results (.json)")
    p.add_argument("--metrics", help="also write the metrics (.json)")
    return p
