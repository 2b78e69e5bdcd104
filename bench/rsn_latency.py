"""RSN-18, RSN-50 and 4xRSN-50 inference latency next to HRNet-W32.

The RSN paper presents RSN as faster than HRNet at similar accuracy; this
measures that claim on this machine. One process per Keras backend
(TensorFlow graph, JAX jit, PyTorch eager), batch 1, 256x192; the models
are timed in turns (the OmniPose benchmark's worker), so load changes on a
shared machine hit all of them alike. Prints a table; `--write` also updates
BENCHMARKS.md.

    python bench/rsn_latency.py [--write] [--runs 5]
"""

import argparse

from omnipose_latency import MODE
from omnipose_latency import run_workers
from omnipose_latency import worker

# (zoo name, label, COCO val AP from the official READMEs); the first is
# the reference of the ratios.
MODELS = (
    ("hrnet_w32.coco_256x192", "HRNet-W32", 74.4),
    ("rsn_18.coco_256x192", "RSN-18", 73.6),
    ("rsn_50.coco_256x192", "RSN-50", 74.7),
    ("rsn_50_x4.coco_256x192", "4xRSN-50 + PRM", 79.0),
)


def _table(rows, runs):
    labels = {name: (label, ap) for name, label, ap in MODELS}
    lines = [
        f"Batch 1 at 256x192, median of {runs} runs after two warm-up calls; "
        "the models were timed in turns in one process per backend, so "
        "the ratios to HRNet-W32 (same process, same turns) hold even when "
        "other jobs load the CPU. AP: COCO val2017 from the "
        "official READMEs, not measured here.",
        "",
        "| backend | mode | model | GMACs | AP | ms / image "
        "| time vs HRNet-W32 | MACs vs HRNet-W32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend in MODE:
        ours = [r for r in rows if r["backend"] == backend]
        ref = ours[0]
        for r in ours:
            label, ap = labels.get(r["model"], (r["model"], None))
            lines.append(
                f"| {backend} | {r['mode']} | {label} (`{r['model']}`) "
                f"| {r['gmacs']:.3f} | {ap if ap is not None else '-'} "
                f"| {r['ms']:.0f} | {r['ms'] / ref['ms']:.2f}x "
                f"| {r['gmacs'] / ref['gmacs']:.2f}x |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--models",
        default=",".join(name for name, _, _ in MODELS),
        help="comma-separated zoo names; the first is the ratio reference",
    )
    parser.add_argument("--worker", choices=sorted(MODE))
    args = parser.parse_args()
    names = args.models.split(",")
    if args.worker:
        return worker(args.worker, args.runs, names)
    text = _table(run_workers(__file__, args.runs, names), args.runs)
    print(text)
    if args.write:
        from report import invocation
        from report import write_section

        write_section(
            "RSN inference latency next to HRNet-W32 (CPU)",
            text,
            invocation(),
        )


if __name__ == "__main__":
    main()
