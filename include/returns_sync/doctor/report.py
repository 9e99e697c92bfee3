"""Render the doctor's results: a wrapped text table for people, JSON for scripts."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from include.returns_sync.doctor.checks import CheckResult, Status, exit_code

MIN_WIDTH = 120
#: Without a terminal (a file, a CI log) lines may be long: one check per line block.
DEFAULT_WIDTH = 180
COLUMNS = ("STATUS", "CHECK", "ASSUMPTION", "OBSERVED", "CONSEQUENCE")


def redact(results: Sequence[CheckResult], secrets: Iterable[str]) -> list[CheckResult]:
    """Replace every known secret value in every text field with `***` (belt and braces)."""
    values = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
    if not values:
        return list(results)

    def clean(text: str) -> str:
        for value in values:
            text = text.replace(value, "***")
        return text

    def clean_any(value: Any) -> Any:
        if isinstance(value, str):
            return clean(value)
        if isinstance(value, dict):
            return {k: clean_any(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean_any(v) for v in value]
        return value

    return [
        replace(
            result,
            assumption=clean(result.assumption),
            observed=clean(result.observed),
            consequence=clean(result.consequence),
            details=clean_any(dict(result.details)),
        )
        for result in results
    ]


def summary(results: Sequence[CheckResult]) -> dict[str, int]:
    counts = Counter(result.status.value for result in results)
    return {status.value: counts.get(status.value, 0) for status in Status}


def to_json(results: Sequence[CheckResult], *, merchant: str) -> str:
    code = exit_code(list(results))
    document = {
        "merchant": merchant,
        "ok": code == 0,
        "exit_code": code,
        "summary": summary(results),
        "checks": [result.to_dict() for result in results],
    }
    return json.dumps(document, indent=2)


def to_table(results: Sequence[CheckResult], *, merchant: str, width: int | None = None) -> str:
    """A fixed-width table; long cells wrap inside their column."""
    if width is None:
        width = shutil.get_terminal_size((0, 0)).columns or DEFAULT_WIDTH
    total = max(MIN_WIDTH, width)
    status_w = max(len(s.value) for s in Status)
    check_w = min(max((len(r.name) for r in results), default=10), 48)
    rest = total - status_w - check_w - 3 * 4  # four " | "-like gaps of three spaces
    text_w = max(20, rest // 3)
    widths = (status_w, check_w, text_w, text_w, text_w)
    lines = [_line(COLUMNS, widths), _line(tuple("-" * w for w in widths), widths)]
    for result in results:
        cells = (
            result.status.value,
            result.name,
            result.assumption,
            result.observed,
            result.consequence,
        )
        wrapped = [textwrap.wrap(cell, w) or [""] for cell, w in zip(cells, widths, strict=True)]
        for index in range(max(len(column) for column in wrapped)):
            parts = tuple(column[index] if index < len(column) else "" for column in wrapped)
            lines.append(_line(parts, widths))
        lines.append("")
    counts = summary(results)
    code = exit_code(list(results))
    verdict = (
        "no blocking problem: ready to go live (read the warnings)"
        if code == 0
        else "fix the blocking rows before going live"
    )
    tally = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    lines.append(f"merchant {merchant}: {len(results)} checks ({tally}). Exit {code}: {verdict}.")
    return "\n".join(lines)


def _line(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    return "   ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()
