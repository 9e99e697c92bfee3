"""The layer rules of docs/ARCHITECTURE.md, checked on the source: no module imports itself
back through others, `domain/` and `reconcile/` stay free of Airflow and HTTP, production code
never imports the sandbox, and the sandbox speaks raw vendor JSON (no `models/`).

The import graph is read with `ast`, without importing anything, so the test is fast and sees
every import: at module level, inside functions and under `if TYPE_CHECKING:` (a type-only
import still ties two modules together). `importlib.import_module("...")` with a literal name
counts too, and so do the lazy export tables of the packages (`{"Sandbox": "scenario"}`), which
name a submodule as a string. Importing `a.b.c` is an edge to `a.b.c` only: that Python runs
the package `__init__` files on the way is not a dependency the importing module chose.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "include.returns_sync"
PACKAGE_DIR = ROOT / "include" / "returns_sync"

# Cycles allowed for now, each a set of module names (relative to include.returns_sync).
# Cycles in domain/, reconcile/, tasks/ and clients/ go here, marked
# `# being removed by the receipts/vocabulary refactor`; none exist today, so the list is empty
# and any cycle fails the test.
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()

# Modules outside sandbox/ that may import it: the demo job behind scripts/demo.
SANDBOX_CONSUMERS = frozenset({"demo"})


@dataclass
class Module:
    """One source file: its dotted name and every absolute name it imports."""

    name: str
    imports: set[str] = field(default_factory=set)


def module_name(path: Path, root: Path, prefix: str) -> tuple[str, bool]:
    """`root/a/b.py` -> `prefix.a.b`; `root/a/__init__.py` -> `prefix.a` (a package)."""
    parts = [prefix, *path.relative_to(root).with_suffix("").parts]
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def imported_names(tree: ast.AST, name: str, is_package: bool) -> set[str]:
    """Absolute names imported anywhere in `tree` (`from a import b` yields `a.b`, which is
    module `a.b` if there is one, else name `b` of module `a`: see `resolve`)."""
    package = name if is_package else name.rpartition(".")[0]
    nodes = list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            found.update(f"{source}.{alias.name}" for alias in node.names)
    if any(isinstance(node, ast.Call) and _calls_import_module(node) for node in nodes):
        # `import_module("a.b")`, and lazy export tables naming a module in full or relative
        # to the package: every string constant that is a module name counts.
        strings = [
            n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
        found.update(s for s in strings if s.replace(".", "_").isidentifier())
        found.update(f"{package}.{s}" for s in strings if s.isidentifier())
    return found


def _calls_import_module(node: ast.Call) -> bool:
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return called in ("import_module", "__import__")


def scan(root: Path, prefix: str) -> dict[str, Module]:
    """Every module under `root` (named `prefix.…`), with all the names it imports."""
    modules: dict[str, Module] = {}
    for path in sorted(root.rglob("*.py")):
        name, is_package = module_name(path, root, prefix)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        modules[name] = Module(name, imported_names(tree, name, is_package))
    return modules


MODULES = scan(PACKAGE_DIR, PACKAGE)


def local(name: str) -> str:
    return name.removeprefix(f"{PACKAGE}.")


def resolve(name: str, modules: Mapping[str, Module]) -> str | None:
    """The module `name` refers to: itself, or the module that defines it (`a.b.Name` -> `a.b`)."""
    while name not in modules:
        if "." not in name:
            return None
        name = name.rpartition(".")[0]
    return name


def import_graph(modules: Mapping[str, Module]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (names relative to include.returns_sync)."""
    graph: dict[str, set[str]] = {}
    for name, module in modules.items():
        targets = {resolve(target, modules) for target in module.imports}
        graph[local(name)] = {local(target) for target in targets if target} - {local(name)}
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def describe(component: frozenset[str], graph: Mapping[str, set[str]]) -> str:
    edges = [f"{a} -> {b}" for a in sorted(component) for b in sorted(graph[a] & component)]
    return "; ".join(edges)


def third_party_roots(module: Module) -> set[str]:
    return {name.split(".")[0] for name in module.imports if not name.startswith(f"{PACKAGE}.")}


# --------------------------------------------------------------------------- the graph itself


def test_the_scan_sees_imports_inside_functions_type_checking_blocks_and_lazy_exports() -> None:
    graph = import_graph(MODULES)
    assert "sandbox.scenario" in graph["sandbox"]  # `_EXPORTS = {"Sandbox": "scenario"}`
    assert "clients.loop" in graph["clients"]  # `_LAZY` table and `if TYPE_CHECKING:`
    assert "runtime" in graph["webhooks.triggers"]  # imported inside `_read_signal`
    assert len(MODULES) > 80


def test_the_cycle_finder_reports_two_modules_that_import_each_other() -> None:
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": set(), "d": {"d"}}
    assert cycles(graph) == [frozenset({"a", "b"})]


# --------------------------------------------------------------------------- the rules


def test_no_two_modules_import_each_other() -> None:
    graph = import_graph(MODULES)
    unexpected = [c for c in cycles(graph) if c not in KNOWN_CYCLES]
    assert not unexpected, "import cycles:\n" + "\n".join(describe(c, graph) for c in unexpected)


def test_every_known_cycle_still_exists() -> None:
    """A known exception that was fixed must leave the list, so it cannot come back unseen."""
    assert set(KNOWN_CYCLES) <= set(cycles(import_graph(MODULES)))


@pytest.mark.parametrize("layer", ["domain", "reconcile"])
def test_domain_and_reconcile_import_neither_airflow_nor_requests(layer: str) -> None:
    """Directly or through any package module they import (they take clients as parameters)."""
    graph = import_graph(MODULES)
    reach = {name for name in graph if name == layer or name.startswith(f"{layer}.")}
    todo = list(reach)
    while todo:
        for target in graph[todo.pop()] - reach:
            reach.add(target)
            todo.append(target)
    offenders = {
        name: sorted(roots)
        for name in sorted(reach)
        if (roots := third_party_roots(MODULES[f"{PACKAGE}.{name}"]) & {"airflow", "requests"})
    }
    assert not offenders, f"{layer}/ reaches Airflow or requests through {offenders}"


def test_production_code_never_imports_the_sandbox() -> None:
    production = {
        name: module
        for name, module in MODULES.items()
        if not (local(name) == "sandbox" or local(name).startswith("sandbox."))
        and local(name) not in SANDBOX_CONSUMERS
    }
    for folder in ("dags", "plugins"):
        production.update(scan(ROOT / folder, folder))
    offenders = sorted(
        name
        for name, module in production.items()
        if any(target.startswith(f"{PACKAGE}.sandbox") for target in module.imports)
    )
    assert not offenders, f"production modules importing sandbox/: {offenders}"


def test_the_sandbox_serves_raw_vendor_json_without_our_models() -> None:
    offenders = sorted(
        local(name)
        for name, module in MODULES.items()
        if local(name).startswith("sandbox")
        and any(target.startswith(f"{PACKAGE}.models") for target in module.imports)
    )
    assert not offenders, f"sandbox modules importing models/: {offenders}"


# --------------------------------------------------------------------------- the documented tree


def documented_scopes(markdown: str) -> dict[str, str]:
    """Package path -> its own text in ARCHITECTURE.md's tree (the first code block).

    A package's text is the rest of its `name/` line and the lines below it that are indented
    deeper, minus those of its subpackages; a module counts as listed when its file name
    appears in its own package's text.
    """
    block = markdown.split("```\n", 2)[1].splitlines()
    scopes: dict[str, str] = {}
    parents: list[tuple[int, str]] = []  # (indent, path) of the enclosing package lines
    for line in filter(str.strip, block):
        indent = len(line) - len(line.lstrip())
        first = line.split()[0]
        while parents and parents[-1][0] >= indent:
            parents.pop()
        owner = parents[-1][1] if parents else ""
        if first.endswith("/") and indent < 20:  # deeper than that is a description column
            path = f"{owner}{first}"
            parents.append((indent, path))
            scopes[path] = line.strip().removeprefix(first)  # `tasks/  rma.py, receipts.py`
        else:
            scopes[owner] = f"{scopes.get(owner, '')}\n{line}"
    return scopes


def test_architecture_md_lists_every_package_and_module() -> None:
    scopes = documented_scopes((ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    missing = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if path.name == "__init__.py" or "versions" in relative.parts:
            continue  # packages are listed as `name/`; one migration file per revision
        package = f"{relative.parent.as_posix()}/"
        scope = scopes.get(package)
        if scope is None:
            missing.append(package)
        elif not re.search(rf"(?<![\w.]){re.escape(path.name)}", scope):
            missing.append(relative.as_posix())
    assert not missing, f"docs/ARCHITECTURE.md does not list {sorted(set(missing))}"
