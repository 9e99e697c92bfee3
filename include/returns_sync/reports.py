"""Run reports: `summary.json` plus CSV detail per run, and a plain-text table for the task log.

Location: `$RETURNS_SYNC_REPORTS_DIR` or `$AIRFLOW_HOME/returns_sync/reports`, then
`<dag_id>/<run_id>/` (PRODUCT.md section 3). Run ids contain characters such as `:` and `+`;
they are kept readable but made safe for every file system.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from include.returns_sync.settings import settings

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def reports_root() -> Path:
    explicit = settings().reports_dir
    if explicit is not None:
        return explicit
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / "returns_sync" / "reports"


def run_dir(dag_id: str, run_id: str, root: Path | None = None) -> Path:
    return (root or reports_root()) / _UNSAFE.sub("_", dag_id) / _UNSAFE.sub("_", run_id)


def write_report(
    dag_id: str,
    run_id: str,
    summary: Mapping[str, Any],
    tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    root: Path | None = None,
) -> Path:
    """Write `summary.json` and one CSV per table; returns the run's report folder.

    Writing replaces the previous files of the same run, so a retried task leaves one report.
    """
    folder = run_dir(dag_id, run_id, root)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(
        folder / "summary.json", json.dumps(summary, indent=2, sort_keys=True, default=str)
    )
    for name, rows in (tables or {}).items():
        _write_csv(folder / f"{name}.csv", rows)
    return folder


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or ["empty"])
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(value) for key, value in row.items()})
    tmp.replace(path)


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return "|".join(str(v) for v in value)
    return "" if value is None else value


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)


def format_counts(title: str, counts: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """A small aligned two-column table for task logs."""
    items = list(counts.items()) if isinstance(counts, Mapping) else list(counts)
    width = max([len(title)] + [len(str(k)) for k, _ in items])
    lines = [f"{title:<{width}}  count", f"{'-' * width}  -----"]
    lines += [f"{k!s:<{width}}  {v}" for k, v in items]
    return "\n".join(lines)
