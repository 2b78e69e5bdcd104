"""`kerapose train`: the top-down, bottom-up or single-stage recipe of a
zoo model on a COCO-format keypoint set, resumable.

Every path is checked before Keras loads; the loop is
`kerapose.training.train`. Exit status: 0 done, 2 bad input (the message
says what to fix), 1 training failed (rerun the same command to resume
from the last finished epoch), 130 interrupted by Ctrl-C.
"""

import json
import os
import shutil
import sys
from pathlib import Path

from kerapose.cli_support import check_model_name

OUTPUTS = (
    "last.weights.h5",
    "best.weights.h5",
    "log.csv",
    "final_metrics.json",
    "config.json",
)


def _check_out_dir(path):
    """The output folder: created when missing, and writable."""
    out = Path(path).expanduser()
    for up in (out, *out.parents):
        if up.exists() and not up.is_dir():
            what = "is a file" if up == out else f"lies under the file {up}"
            raise ValueError(
                f"--out {out} {what}; give a folder to write the weights "
                "and the log into."
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"--out {out}: cannot create the folder ({e.strerror or e}); "
            "choose a folder you can write to."
        ) from e
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(
            f"--out {out} is not writable; choose a folder you can write to."
        )
    return out


def _check_earlier_run(args, out):
    """Refuses to overwrite a finished run or resume another command's."""
    backup = out / "backup"
    present = [n for n in OUTPUTS if (out / n).is_file()]
    if args.overwrite:
        for name in present:
            (out / name).unlink()
        shutil.rmtree(backup, ignore_errors=True)
        return
    config = out / "config.json"
    if backup.is_dir() and config.is_file():
        earlier = json.loads(config.read_text())
        size = list(args.input_size) if args.input_size else None
        if (earlier.get("model"), earlier.get("input_size")) != (
            args.name,
            size,
        ):
            raise ValueError(
                f"--out {out} holds an interrupted run of "
                f"{earlier.get('model')} (--input-size "
                f"{earlier.get('input_size') or 'not given'}); rerun that "
                "command to resume it, pass --overwrite to start over, or "
                "choose another --out."
            )
    # final_metrics.json is written last: a run without it never finished
    # (and one without a backup had no epoch to resume from).
    elif "final_metrics.json" in present:
        raise ValueError(
            f"--out {out} holds a finished run ({', '.join(present)}); "
            "choose another --out, or pass --overwrite to train from "
            "scratch there."
        )


def _check_task_options(args):
    """Options the model's task rules out, from the zoo entry (no build)."""
    name = str(args.name)
    if Path(name).is_dir() or {"/", "\\"} & set(name):
        if args.input_size:
            raise ValueError(
                f"--input-size applies to zoo names; the preset directory "
                f"{name} fixes the input size."
            )
        return
    from kerapose.training.recipes import model_input_shape
    from kerapose.training.recipes import task_of_class
    from kerapose.zoo import registry

    task = task_of_class(registry.resolve(name)[2]["config"]["class_name"])
    model_input_shape(task, args.input_size)
    if args.det_file and task != "top_down":
        raise ValueError(
            f"--det-file is for top-down models; {name} is "
            f"{task.replace('_', '-')} and finds the people itself."
        )


def _check_args(args):
    """Every input and output check, before the model loads."""
    check_model_name(args.name)
    if (args.annotations is None) != (args.images is None):
        raise ValueError("Give both ANN and IMAGES, or --synthetic N alone.")
    if args.annotations is None and not args.synthetic:
        raise ValueError(
            "No training data: give ANN (a COCO keypoint annotation file) "
            "and IMAGES (its image folder), or --synthetic N to train on N "
            "built-in synthetic images."
        )
    if args.annotations is not None and args.synthetic:
        raise ValueError("Give ANN IMAGES or --synthetic N, not both.")
    if (args.val_ann is None) != (args.val_images is None):
        raise ValueError("Give --val-ann and --val-images together.")
    for ann, images in (
        (args.annotations, args.images),
        (args.val_ann, args.val_images),
    ):
        if ann is not None and not Path(ann).is_file():
            raise FileNotFoundError(
                f"Annotation file not found: {ann}. Give a COCO keypoint "
                "JSON (person_keypoints_*.json)."
            )
        if images is not None and not Path(images).is_dir():
            raise FileNotFoundError(
                f"Image folder not found: {images}. Give the folder the "
                "annotation file's file_name entries are relative to."
            )
    if args.det_file and not Path(args.det_file).is_file():
        raise FileNotFoundError(f"Detections file not found: {args.det_file}")
    if args.weights and {"/", "\\", "."} & set(args.weights):
        if not Path(args.weights).exists() and "://" not in args.weights:
            raise FileNotFoundError(f"Weights file not found: {args.weights}")
    for option in ("epochs", "batch_size", "steps_per_epoch", "synthetic"):
        value = getattr(args, option)
        if value is not None and value < (0 if option == "synthetic" else 1):
            raise ValueError(
                f"--{option.replace('_', '-')} must be a positive number, "
                f"got {value}."
            )
    if args.lr is not None and args.lr <= 0:
        raise ValueError(f"--lr must be positive, got {args.lr}.")
    if args.input_size and min(args.input_size) < 1:
        raise ValueError("--input-size takes two positive sides, H W.")
    _check_task_options(args)
    out = _check_out_dir(args.out)
    _check_earlier_run(args, out)
    return out


def _settings(args):
    from kerapose.training.run import TrainSettings

    return TrainSettings(
        model=args.name,
        train_ann=args.annotations,
        train_images=args.images,
        val_ann=args.val_ann,
        val_images=args.val_images,
        det_file=args.det_file,
        input_size=tuple(args.input_size) if args.input_size else None,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_steps=None if args.lr_steps is None else tuple(args.lr_steps),
        lr_factor=args.lr_factor,
        epochs=args.epochs,
        flip_test=args.flip_test,
        eval_every=args.eval_every,
        out=str(args.out),
        seed=args.seed,
        synthetic=args.synthetic or 0,
        steps_per_epoch=args.steps_per_epoch,
        verbose=0 if args.quiet else 1,
        run_eagerly=args.run_eagerly,
        weights=args.weights,
        optimizer=args.optimizer,
    )


def _resume_hint(out):
    from kerapose.training.callbacks import backup_epoch

    epoch = backup_epoch(out)
    if epoch is None:
        return "No epoch finished; rerunning the command starts over."
    return (
        f"Epochs 1-{epoch} are saved in {out / 'backup'}: rerun the same "
        f"command to resume at epoch {epoch + 1}."
    )


def run_train(args):
    out = _check_args(args)
    args.out = out
    # The module, not the function: tests replace `run.train`.
    from kerapose.training import run

    settings = _settings(args)
    try:
        result = run.train(settings)
    except KeyboardInterrupt:
        print(
            f"\nkerapose train: stopped. {_resume_hint(out)}", file=sys.stderr
        )
        return 130
    except (ValueError, OSError, TypeError):
        raise  # bad input: `main` says so and exits 2
    except Exception as e:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(
            f"kerapose train: training failed: {type(e).__name__}: {e}\n"
            f"{_resume_hint(out)}",
            file=sys.stderr,
        )
        return 1
    first = result["first_epoch"]
    if first:
        print(f"Resumed at epoch {first + 1}.")
    for path in result["files"]:
        print(f"Wrote {path}")
    return 0


def add_train_parser(sub):
    p = sub.add_parser(
        "train",
        help="train a zoo model on a COCO-format set (resumable)",
        description="Train a zoo model on a COCO-format keypoint set with "
        "its family's recipe: top-down (HRNet, RSN, ...: person crops), "
        "bottom-up (HigherHRNet, hourglass: whole images, heatmaps and "
        "tags) or single-stage (YOLO-Pose). Writes last.weights.h5 (each "
        "epoch), best.weights.h5 (best val_AP, with a validation set), "
        "log.csv (one row per epoch), config.json and final_metrics.json "
        "to --out. Rerun the same command after an interruption to resume "
        "from the last finished epoch. Exit status: 0 done, 2 bad input, 1 "
        "training failed, 130 interrupted.",
    )
    p.add_argument(
        "name",
        help="zoo name (see `kerapose list`) or preset "
        "directory; its family picks the recipe",
    )
    p.add_argument(
        "annotations",
        nargs="?",
        metavar="ANN",
        help="COCO keypoint annotation file (.json) to train on; leave out "
        "with --synthetic",
    )
    p.add_argument(
        "images", nargs="?", metavar="IMAGES", help="folder of ANN's images"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        required=True,
        help="output folder (created); rerun with the same --out to resume",
    )
    p.add_argument(
        "--val-ann",
        metavar="FILE",
        help="validation COCO keypoint file: COCO AP "
        "every --eval-every epochs and at the end",
    )
    p.add_argument(
        "--val-images", metavar="DIR", help="folder of --val-ann's images"
    )
    p.add_argument(
        "--synthetic",
        type=int,
        metavar="N",
        help="train on N built-in synthetic images (written to OUT/data, "
        "with a validation split of N/4, at least 4) instead of ANN IMAGES",
    )
    p.add_argument(
        "--epochs",
        metavar="N",
        type=int,
        help="total epochs; default: the recipe's (210 top-down, 300 "
        "bottom-up and single-stage)",
    )
    p.add_argument(
        "--batch-size",
        metavar="B",
        type=int,
        help="images (top-down: people) per batch; default: the recipe's "
        "(32 top-down, 12 bottom-up, 16 single-stage)",
    )
    p.add_argument(
        "--lr",
        metavar="LR",
        type=float,
        help="base learning rate; default: the family's (1e-3; 2e-4 for "
        "the hourglass)",
    )
    p.add_argument(
        "--lr-steps",
        type=int,
        nargs="*",
        metavar="EPOCH",
        help="0-based epochs from which the rate is multiplied by "
        "--lr-factor; default: the recipe's (170 200 top-down, 200 260 "
        "bottom-up, none single-stage); give none for a constant rate",
    )
    p.add_argument(
        "--lr-factor",
        metavar="F",
        type=float,
        default=0.1,
        help="learning-rate factor at each step (default 0.1)",
    )
    p.add_argument(
        "--optimizer",
        choices=("adam", "sgd"),
        default="adam",
        help="adam (the recipes', default) or sgd (momentum 0.9)",
    )
    p.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="network input size; default: the preset's (bottom-up: a "
        "square of its larger side; bottom-up takes H = W)",
    )
    p.add_argument(
        "--weights",
        metavar="W",
        help="initial weights: a tag, a .weights.h5 (e.g. another run's "
        "best.weights.h5), an official checkpoint or a URL; default: random",
    )
    p.add_argument(
        "--steps-per-epoch",
        metavar="N",
        type=int,
        help="batches per epoch (the data repeats); default: one pass",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=1,
        metavar="N",
        help="COCO AP on the validation set every N epochs (default 1; 0: "
        "only after training)",
    )
    p.add_argument(
        "--no-flip",
        dest="flip_test",
        action="store_false",
        help="evaluate without the flip test (top-down and bottom-up)",
    )
    p.add_argument(
        "--det-file",
        metavar="FILE",
        help="top-down: person detections (COCO results .json) to evaluate "
        "on; default: the ground-truth boxes",
    )
    p.add_argument(
        "--seed",
        metavar="N",
        type=int,
        default=0,
        help="seed of the weights, shuffling and augmentation (default 0)",
    )
    p.add_argument(
        "--run-eagerly",
        action="store_true",
        help="no compiled train step: for debugging, and for smoke runs of "
        "a few steps where compiling costs more than training",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete an earlier run's files in --out and start over",
    )
    return p
