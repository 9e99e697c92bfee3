"""What every benchmark shares: its own section of docs/BENCHMARKS.md, the machine it ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"


def write_section(section: str, text: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) the section headed `section`; every other section stays as it is."""
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = current.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == section), None)
    if start is None:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "".join(lines[end:])
        updated = "".join(lines[:start]) + text + ("\n" + tail if tail else "")
    path.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


def machine() -> str:
    """The machine as the sections name it: architecture, CPUs this process may use, Python."""
    cpus = len(os.sched_getaffinity(0))
    return f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}"
