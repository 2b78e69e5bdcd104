"""Wall time of `kerapose list` and `kerapose --help`, each a new process.

Times `python -m kerapose ...` on this checkout and, with `--baseline DIR`,
on another source tree (e.g. an older commit unpacked with `git archive`),
the runs of both interleaved so that both see the same machine load. Prints
the median of `--runs` runs; ``--write`` records them in BENCHMARKS.md
(section "CLI start-up", see ``bench/report.py``).

    mkdir -p /tmp/kerapose_before
    git archive COMMIT | tar -x -C /tmp/kerapose_before
    python bench/cli_startup.py --baseline /tmp/kerapose_before --write
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import report

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (("kerapose list", ["list"]), ("kerapose --help", ["--help"]))


def wall_time(tree, argv) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "kerapose", *argv],
        cwd=tree,
        env=env,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - start


def run(trees: dict, runs: int) -> dict:
    """{(tree label, command label): median seconds}."""
    times = {(t, c): [] for t in trees for c, _ in COMMANDS}
    for _ in range(runs):
        for label, argv in COMMANDS:
            for tree, path in trees.items():
                times[tree, label].append(wall_time(path, argv))
    return {key: statistics.median(t) for key, t in times.items()}


def table(medians: dict, trees: dict, runs: int) -> str:
    head = " | ".join(trees)
    lines = [
        f"Median wall time of {runs} runs, each a new process "
        "(`python -m kerapose ...`), runs of the trees interleaved.",
        "",
        f"| command | {head} |",
        "|---" * (len(trees) + 1) + "|",
    ]
    for label, _ in COMMANDS:
        cells = " | ".join(f"{medians[t, label]:.2f} s" for t in trees)
        lines.append(f"| `{label}` | {cells} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another kerapose source tree to time next to this one",
    )
    parser.add_argument(
        "--baseline-name",
        default="before",
        help="its column title, e.g. the commit",
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--write", action="store_true", help="update BENCHMARKS.md"
    )
    args = parser.parse_args(argv)
    trees = {"this checkout": ROOT}
    if args.baseline:
        trees = {args.baseline_name: args.baseline.resolve(), **trees}
    medians = run(trees, args.runs)
    body = table(medians, trees, args.runs)
    print(body)
    if args.write:
        report.write_section("CLI start-up", body, report.invocation())


if __name__ == "__main__":
    main()
