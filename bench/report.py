"""Writes one `## Section` of BENCHMARKS.md, leaving the others as they are."""

import datetime
import os
import platform
import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Every figure here was measured by the script named in its section, on "
    "the machine described there; rerun the command to reproduce it.\n"
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(title: str, body: str, command: str) -> None:
    """Replaces (or appends) `## title` in BENCHMARKS.md."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    date = datetime.date.today().isoformat()
    section = (
        f"## {title}\n\n"
        f"Measured {date} on {machine()}.\n"
        f"Reproduce: `{command}`\n\n{body.strip()}\n"
    )
    pattern = re.compile(
        rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    BENCHMARKS.write_text(text.rstrip("\n") + "\n")


def invocation() -> str:
    """The command line this script was run with, for `Reproduce:`."""
    import shlex
    import sys

    return "python " + " ".join(shlex.quote(a) for a in sys.argv)
