"""The package's layering, read from the source: every import statement of every module
(those inside functions and under TYPE_CHECKING too), resolved to the abicheck module it
names.

The rules, over the top-level units (a sub-package such as readers/, or a module such as
model.py):

- no import cycle between units;
- readers/ imports nothing from targets/, checks/, reporters/ or the CLI;
- model.py imports no abicheck module but errors;
- checks/ imports neither reporters/ nor the CLI;
- reporters/ imports neither checks/ nor the CLI;
- only the CLI itself and __main__.py import the CLI.

Today's code breaks some of them; those imports are listed in KNOWN_VIOLATIONS, each with
why, so that a new violation fails while the old ones wait for their restructuring. An
entry that no longer occurs fails too: the list only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "abicheck"

CLI = frozenset({"cli", "cli_config", "commands"})

# (importing module, imported module) → why it is tolerated for now.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {
    # abicheck/__init__.py's PEP 562 __getattr__ imports api on first use of
    # abicheck.check/load_target; api's imports lead back to modules that read
    # abicheck.__version__ (cli, reporters, targets): a cycle through the package root.
    ("abicheck", "abicheck.api"): "lazy public API in the package root: cycle",
    # api.check() expands its module arguments with the CLI's expand_modules: the library
    # API depends on the CLI (and so api → cli → root → api is a cycle).
    ("abicheck.api", "abicheck.cli"): "api uses cli.expand_modules",
    # cli imports commands for the command bodies; commands borrows cli's helpers
    # (_parse_param, expand_modules, load_targets): a cycle cli ↔ commands.
    ("abicheck.commands", "abicheck.cli"): "commands uses cli helpers: cycle",
}


def _modules(package_dir: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted name → (file, is a package's __init__)."""
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def _owner(name: str, modules: Mapping[str, object]) -> str:
    """The module a dotted name lives in: itself, or the nearest enclosing one."""
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Each abicheck module → the abicheck modules it imports anywhere in its source."""
    modules = _modules(package_dir)
    root = package_dir.name
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(
                    _owner(a.name, modules) for a in node.names if a.name.split(".")[0] == root
                )
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the importing module's package upwards
                    base = name if is_package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    if node.module:
                        base = f"{base}.{node.module}"
                else:
                    base = node.module or ""
                if base.split(".")[0] != root:
                    continue
                for a in node.names:
                    # `from abicheck.readers import elf` names a module; `from abicheck
                    # import __version__` names something in the package's __init__
                    sub = f"{base}.{a.name}"
                    targets.add(sub if sub in modules else _owner(base, modules))
        targets.discard(name)
        graph[name] = targets
    return graph


def unit(module: str) -> str:
    """The top-level unit of a module: "readers" for abicheck.readers.elf, "abicheck" for
    the package's own __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _forbidden(importer: str, imported: str) -> str | None:
    """Which rule the import breaks, or None."""
    src, dst = unit(importer), unit(imported)
    if src == dst:
        return None
    if dst in CLI and src not in CLI and src != "__main__":
        return "only the CLI and __main__ import the CLI"
    if src == "readers" and (dst in {"targets", "checks", "reporters"} or dst in CLI):
        return "readers/ imports no targets/, checks/, reporters/ or CLI"
    if src == "model" and dst != "errors":
        return "model.py imports nothing of abicheck but errors"
    if src == "checks" and (dst == "reporters" or dst in CLI):
        return "checks/ imports no reporters/ or CLI"
    if src == "reporters" and (dst == "checks" or dst in CLI):
        return "reporters/ imports no checks/ or CLI"
    return None


def rule_violations(
    graph: Mapping[str, Iterable[str]], allowed: Mapping[tuple[str, str], str]
) -> list[str]:
    return [
        f"{importer} imports {imported}: {why}"
        for importer, imports in sorted(graph.items())
        for imported in sorted(imports)
        if (why := _forbidden(importer, imported)) and (importer, imported) not in allowed
    ]


def unit_cycles(
    graph: Mapping[str, Iterable[str]], allowed: Mapping[tuple[str, str], str]
) -> list[list[str]]:
    """Strongly connected groups of more than one unit (Tarjan), allowed imports left out."""
    edges: dict[str, set[str]] = {}
    for importer, imports in graph.items():
        src = unit(importer)
        edges.setdefault(src, set())
        for imported in imports:
            dst = unit(imported)
            if dst != src and (importer, imported) not in allowed:
                edges[src].add(dst)
                edges.setdefault(dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_is_read(graph: dict[str, set[str]]) -> None:
    # a walker that found nothing would pass every rule
    assert "abicheck.readers.elf" in graph
    assert "abicheck.model" in graph["abicheck.readers.elf"]
    # an import inside a function counts
    assert "abicheck.cli" in graph["abicheck.commands"]


def test_layering_rules(graph: dict[str, set[str]]) -> None:
    assert rule_violations(graph, KNOWN_VIOLATIONS) == []


def test_no_import_cycle_between_units(graph: dict[str, set[str]]) -> None:
    assert unit_cycles(graph, KNOWN_VIOLATIONS) == []


def test_known_violations_still_exist(graph: dict[str, set[str]]) -> None:
    """An allow-list entry whose import is gone must be removed, so that it cannot
    silently excuse a later import."""
    stale = [edge for edge in KNOWN_VIOLATIONS if edge[1] not in graph.get(edge[0], ())]
    assert stale == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("abicheck.readers.elf", "abicheck.cli"),
        ("abicheck.readers.elf", "abicheck.targets.layouts"),
        ("abicheck.model", "abicheck.ruledata"),
        ("abicheck.checks.layout", "abicheck.reporters.text"),
        ("abicheck.reporters.text", "abicheck.checks.layout"),
        ("abicheck.engine", "abicheck.commands"),
    ],
)
def test_a_new_violation_fails(graph: dict[str, set[str]], importer: str, imported: str) -> None:
    """The rules can fail: one more import of a forbidden kind is reported."""
    changed = {k: set(v) for k, v in graph.items()}
    changed[importer].add(imported)
    assert rule_violations(changed, KNOWN_VIOLATIONS)


def test_a_new_cycle_fails(graph: dict[str, set[str]]) -> None:
    changed = {k: set(v) for k, v in graph.items()}
    changed["abicheck.model"].add("abicheck.readers.elf")  # readers import model
    assert unit_cycles(changed, KNOWN_VIOLATIONS) == [["model", "readers"]]
