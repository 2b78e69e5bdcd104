"""The `kerapose` command line: list, describe, convert, predict, eval,
train, export.

`list`, `describe` and `--help` read the zoo's data and import neither
Keras nor TensorFlow. The other commands check their input and output
paths before loading anything slow, and keep TensorFlow's log lines off the
terminal unless `--verbose`. Exit status: 0 done, 1 nothing listed, images
that could not be read (listed) or a failed TFLite / ONNX check, 2 an error
(the message says what to do).
"""

import argparse
import json
import os
import sys
from pathlib import Path

from kerapose.cli_support import check_model_name
from kerapose.cli_support import check_output_path
from kerapose.cli_support import check_written
from kerapose.cli_support import quiet_native_logs


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
            f"No pretrained weights{what} can be loaded: no tag has a "
            "download URL and none are in "
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


def _cmd_predict(args):
    from kerapose.cli_predict import run_predict

    return run_predict(args)


def _cmd_eval(args):
    from kerapose.cli_eval import run_eval

    return run_eval(args)


def _cmd_train(args):
    from kerapose.cli_train import run_train

    return run_train(args)


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

    from kerapose.cli_predict import add_predict_parser

    p = add_predict_parser(sub)
    _add_logging_options(p)
    p.set_defaults(func=_cmd_predict)

    from kerapose.cli_eval import add_eval_parser

    p = add_eval_parser(sub)
    _add_logging_options(p)
    p.set_defaults(func=_cmd_eval)

    from kerapose.cli_train import add_train_parser

    p = add_train_parser(sub)
    _add_logging_options(p)
    p.set_defaults(func=_cmd_train)

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
