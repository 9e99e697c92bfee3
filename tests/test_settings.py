"""`settings`: every `RETURNS_SYNC_*` variable is read, typed and checked in one module.

Each variable has a default, takes its valid values with the meaning it has always had, and
refuses a value it cannot take with an error that names the variable and the value. No other
production module reads a `RETURNS_SYNC_*` variable from the environment, and the settings table
of docs/OPERATIONS.md lists exactly these variables.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.settings import Settings, SettingsError, settings

ROOT = Path(__file__).resolve().parents[1]

#: field -> (default, [(valid value, what it reads as)], [values it refuses]).
#: Paths and the migrations URL take any text, so they have no value to refuse.
CASES: dict[str, tuple[Any, list[tuple[str, Any]], list[str]]] = {
    "merchants": (None, [("/etc/returns/merchants.yaml", Path("/etc/returns/merchants.yaml"))], []),
    "rma_schedule_minutes": (5, [("10", 10), ("1", 1)], ["0", "five"]),
    "receipts_schedule_minutes": (15, [("30", 30)], ["-1", "1.5"]),
    "backfill_cron": (
        "0 2 * * *",
        [("30 3 * * 1-5", "30 3 * * 1-5"), ("@daily", "@daily")],
        ["daily", "0 2 * *"],
    ),
    "retry_delay_seconds": (30, [("1", 1), ("0", 0)], ["-1", "2s"]),
    "webhook_poll_seconds": (1.0, [("0.5", 0.5), ("0", 1.0)], ["-1", "nan", "fast"]),
    "poll_overlap_minutes": (30, [("45", 45), ("0", 0), ("-5", 0)], ["1.5", "half"]),
    "initial_lookback_hours": (24, [("1", 1), ("0", 24)], ["-1", "a day"]),
    "backfill_overlap_hours": (6, [("12", 12), ("0", 0)], ["-6", "6h"]),
    "batch_size": (100, [("20", 20), ("0", 100), ("-3", 1)], ["1e3"]),
    "loop_page_size": (750, [("250", 250), ("0", 750), ("9999", 750), ("-1", 1)], ["max"]),
    "inbox_claim_limit": (500, [("3", 3), ("0", 500), ("-1", 1)], ["all"]),
    "inbox_stale_minutes": (10, [("1", 1), ("0", 1)], ["ten"]),
    "dry_run": (
        False,
        [("true", True), ("ON", True), ("1", True), ("false", False), ("no", False)],
        ["shadow", "maybe"],
    ),
    "warehouse_id": (None, [("12", 12), ("0", 0)], ["-1", "wh-1"]),
    "max_unmappable": (50, [("5", 5), ("0", 0)], ["-1", "many"]),
    "stale_claim_minutes": (15, [("30", 30), ("0", 0), ("-2", 0)], ["soon"]),
    "process_settle_minutes": (30.0, [("0.5", 0.5), ("0", 0.0)], ["-1", "nan", "inf", "later"]),
    "criteria": (None, [("/etc/returns/criteria.yaml", Path("/etc/returns/criteria.yaml"))], []),
    "reports_dir": (None, [("/var/reports", Path("/var/reports"))], []),
    "api_pool_slots": (2, [("4", 4), ("1", 1)], ["0", "two"]),
    "http_timeout": (30.0, [("0.3", 0.3), ("0", 30.0)], ["-1", "inf", "30s"]),
    "retry_wait_scale": (1.0, [("0.01", 0.01), ("0", 1.0)], ["-0.5", "x"]),
    "migrations_db": (None, [("sqlite:////tmp/state.db", "sqlite:////tmp/state.db")], []),
}


def _name(field: str) -> str:
    variable = getattr(Settings, field)
    name: str = variable.name
    return name


def test_every_variable_has_its_cases() -> None:
    assert [variable.attr for variable in Settings.variables()] == list(CASES)
    assert all(variable.name.startswith("RETURNS_SYNC_") for variable in Settings.variables())


@pytest.mark.parametrize("field", list(CASES))
def test_an_unset_or_empty_variable_reads_as_its_default(field: str) -> None:
    default = CASES[field][0]
    assert getattr(Settings.from_env({}), field) == default
    assert getattr(Settings.from_env({_name(field): "  "}), field) == default
    assert getattr(Settings, field).default == default


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [(field, raw, expected) for field, (_, valid, _) in CASES.items() for raw, expected in valid],
)
def test_a_valid_value_reads_as_it_always_has(field: str, raw: str, expected: Any) -> None:
    assert getattr(Settings.from_env({_name(field): f" {raw} "}), field) == expected


@pytest.mark.parametrize(
    ("field", "raw"),
    [(field, raw) for field, (_, _, invalid) in CASES.items() for raw in invalid],
)
def test_a_value_a_variable_cannot_take_is_an_error_naming_both(field: str, raw: str) -> None:
    configured = Settings.from_env({_name(field): raw})
    with pytest.raises(SettingsError) as raised:
        getattr(configured, field)
    assert f"environment variable {_name(field)} must be " in str(raised.value)
    assert f"(got {raw!r})" in str(raised.value)
    assert configured.problems() == [str(raised.value)]


def test_a_bad_variable_fails_only_what_reads_it() -> None:
    """The DAG files read their schedules at parse time: a task's bad setting must not stop them
    from parsing (it fails the task that reads it, with an alert)."""
    configured = Settings.from_env(
        {"RETURNS_SYNC_DRY_RUN": "shadow", "RETURNS_SYNC_BATCH_SIZE": "lots"}
    )
    assert configured.rma_schedule_minutes == 5
    assert configured.problems() == [
        "environment variable RETURNS_SYNC_BATCH_SIZE must be a whole number (got 'lots')",
        "environment variable RETURNS_SYNC_DRY_RUN must be true or false (got 'shadow')",
    ]


def test_settings_are_read_only() -> None:
    with pytest.raises(AttributeError, match="RETURNS_SYNC_BATCH_SIZE"):
        Settings.from_env({}).batch_size = 5  # type: ignore[misc]


def test_the_accessor_follows_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETURNS_SYNC_BATCH_SIZE", "7")
    first = settings()
    assert first.batch_size == 7
    assert settings() is first  # the same environment: parsed once
    monkeypatch.setenv("RETURNS_SYNC_BATCH_SIZE", "8")
    assert settings().batch_size == 8
    monkeypatch.delenv("RETURNS_SYNC_BATCH_SIZE")
    assert settings().batch_size == 100


def test_importing_the_settings_stays_cheap() -> None:
    """DAG files import it at parse time: no Airflow, no pandas, no pydantic."""
    code = (
        "import sys, include.returns_sync.settings; "
        "print(sorted(m for m in ('airflow', 'pandas', 'pydantic', 'sqlalchemy') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_settings_never_show_a_value() -> None:
    """A value may be a secret (`RETURNS_SYNC_DB` holds a database password)."""
    shown = repr(Settings.from_env({"RETURNS_SYNC_DB": "postgresql://u:hunter2@db/rs"}))
    assert "RETURNS_SYNC_DB" in shown
    assert "hunter2" not in shown


# ------------------------------------------------------------------- the one table, the one reader


def _settings_table() -> dict[str, str]:
    """docs/OPERATIONS.md's settings table: variable -> default column."""
    text = (ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(RETURNS_SYNC_[A-Z_]+)` \| ([^|]+) \|", section, re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def test_the_operations_guide_lists_every_variable_once_with_its_default() -> None:
    table = _settings_table()
    assert list(table) == [variable.name for variable in Settings.variables()]
    for variable in Settings.variables():
        if variable.default is None:
            continue
        shown = variable.default
        if isinstance(shown, bool):
            shown = str(shown).lower()
        elif isinstance(shown, float) and shown.is_integer():
            shown = int(shown)
        assert str(shown) in table[variable.name], (variable.name, table[variable.name])


_ENVIRON_READS = {"get", "getenv", "pop", "setdefault", "__getitem__", "__contains__"}


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level names bound to text (`STRICT_ENV = "..."`, `ENV_VAR = "AIRFLOW_CONN_" + ...`)."""
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = _key(node.value, found)
    return found


def _key(node: ast.expr, constants: dict[str, str]) -> str:
    """The variable name a key expression spells, as far as it can be known ("?" elsewhere)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id, "?")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _key(node.left, constants) + _key(node.right, constants)
    return "?"


def _is_environ(node: ast.expr) -> bool:
    if isinstance(node, ast.IfExp):  # (os.environ if environ is None else environ).get(...)
        return _is_environ(node.body) or _is_environ(node.orelse)
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def environment_reads(source: str) -> list[str]:
    """The `RETURNS_SYNC_*` (or unknown) variables a module reads from the environment:
    `os.environ.get(...)`, `os.environ[...]`, `os.getenv(...)`, `... in os.environ`."""
    tree = ast.parse(source)
    constants = _constants(tree)
    keys = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            function = node.func
            if isinstance(function, ast.Attribute) and (
                (function.attr in _ENVIRON_READS and _is_environ(function.value))
                or function.attr == "getenv"
            ):
                keys.append(_key(node.args[0], constants))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if _is_environ(node.value):
                keys.append(_key(node.slice, constants))
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            keys.append(_key(node.left, constants))
    return [key for key in keys if key.startswith(("RETURNS_SYNC_", "?"))]


def test_the_source_scan_finds_each_way_of_reading_a_variable() -> None:
    source = (
        "import os\nfrom os import environ\n"
        'NAME = "RETURNS_SYNC_SOMETHING"\n'
        'a = os.environ.get("RETURNS_SYNC_A", "1")\n'
        "b = os.environ[NAME]\n"
        'c = os.getenv("RETURNS_SYNC_C")\n'
        'd = "RETURNS_SYNC_D" in os.environ\n'
        'e = environ.get("RETURNS_" + "SYNC_E")\n'
        "(os.environ if e else {}).get(NAME)\n"
        'f = os.environ.get("AIRFLOW_HOME")\n'
        'os.environ["RETURNS_SYNC_WRITTEN"] = "x"\n'
    )
    assert environment_reads(source) == [
        "RETURNS_SYNC_A",
        "RETURNS_SYNC_SOMETHING",
        "RETURNS_SYNC_C",
        "RETURNS_SYNC_D",
        "RETURNS_SYNC_E",
        "RETURNS_SYNC_SOMETHING",
    ]


def test_no_production_module_but_settings_reads_a_returns_sync_variable() -> None:
    """`sandbox/` (test tooling: `RETURNS_SYNC_SANDBOX_STRICT`) is not production code."""
    files = [
        *ROOT.glob("dags/**/*.py"),
        *ROOT.glob("include/**/*.py"),
        *ROOT.glob("plugins/**/*.py"),
    ]
    sandbox = ROOT / "include" / "returns_sync" / "sandbox"
    allowed = ROOT / "include" / "returns_sync" / "settings.py"
    offenders = {
        str(path.relative_to(ROOT)): reads
        for path in files
        if path != allowed and sandbox not in path.parents
        for reads in [environment_reads(path.read_text(encoding="utf-8"))]
        if reads
    }
    assert offenders == {}
