"""Tests and benchmarks share code only through `tests.support` (issue 15, item 5).

No test imports bench/; a benchmark imports nothing of tests/ but the support package (the
harnesses and fakes), never a test module or a conftest; a test module imports no other test
module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_test_imports_the_benchmarks() -> None:
    offending = {
        str(path.relative_to(ROOT)): sorted(
            name for name in imported_modules(path) if name.split(".")[0] == "bench"
        )
        for path in (ROOT / "tests").rglob("*.py")
    }
    assert {path: names for path, names in offending.items() if names} == {}


def test_benchmarks_import_only_the_support_package_of_the_tests() -> None:
    offending = {
        str(path.relative_to(ROOT)): sorted(
            name
            for name in imported_modules(path)
            if name.split(".")[0] == "tests" and not name.startswith("tests.support")
        )
        for path in (ROOT / "bench").glob("*.py")
    }
    assert {path: names for path, names in offending.items() if names} == {}


def test_no_test_module_imports_another_test_module() -> None:
    offending = {
        str(path.relative_to(ROOT)): sorted(
            name
            for name in imported_modules(path)
            if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
        )
        for path in (ROOT / "tests").rglob("*.py")
    }
    assert {path: names for path, names in offending.items() if names} == {}
