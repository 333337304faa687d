"""The package layering stays true: every import in nasflow (and in the subpackages installed
from strategies/, cli/ and spaces/), lazy ones inside functions included, goes down the
pipeline order, and no module imports itself back through others (no cycles).

    base (errors, limits, registry, _plugins) < ops < space < compile < tasks < runs < derive
        < search, train (peers: neither imports the other) < deploy < hardware < viz < cli

    accel       may import compile and below; only search, train, deploy, cli (and the
                plug-in packages) import it: the compiler never does
    strategies  may import up to search (not train); search finds them by name
    spaces.*    task adapters: may import anything below cli
    nasflow     the package itself (its __init__, the public API) may import anything but
                cli and spaces; only cli and spaces import it
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

REPO = Path(__file__).resolve().parent.parent
# source folder -> the package it installs as (pyproject.toml's package-dir)
ROOTS = {"nasflow": "nasflow", "strategies": "nasflow.strategies", "cli": "nasflow.cli", "spaces": "nasflow.spaces"}
BASE = {"errors", "limits", "registry", "_plugins"}
TOP_LEVEL_MODULES = {"__init__.py", "errors.py", "limits.py", "registry.py", "_plugins.py"}

# The pipeline order; packages of one rank are peers and never import each other.
RANK = {"base": 0, "ops": 1, "space": 2, "compile": 3, "tasks": 4, "runs": 5, "derive": 6,
        "search": 7, "train": 7, "deploy": 8, "hardware": 9, "viz": 10, "cli": 11}
CORE = set(RANK)
# Who may import what, beyond "a lower rank of the core".
ACCEL_IMPORTS = {p for p, r in RANK.items() if r <= RANK["compile"]}
ACCEL_IMPORTERS = {"search", "train", "deploy", "cli", "strategies", "spaces", "nasflow"}
STRATEGIES_IMPORTS = {p for p, r in RANK.items() if r <= RANK["search"]} - {"train"} | {"accel"}
STRATEGIES_IMPORTERS = {"search", "cli", "spaces", "nasflow"}  # search looks a strategy up by name
SPACES_IMPORTS = (CORE - {"cli"}) | {"accel", "strategies", "nasflow"}
NASFLOW_IMPORTS = (CORE - {"cli"}) | {"accel", "strategies"}
NASFLOW_IMPORTERS = {"cli", "spaces"}

# (importing module, imported module) pairs that break the rules today, each with the change
# that removes it. The test fails once a pair is gone, so that its entry is removed too.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module
    where: str  # file:line


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for folder, package in ROOTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([package, *parts])] = path
    return mods


def _imports(mods: dict[str, Path]) -> list[Import]:
    """Every import of a nasflow module, at the top of a file or inside a function."""
    found: list[Import] = []
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the importing module's package, up level - 1
                    up = package[:len(package) - node.level + 1]
                    module = ".".join(up + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names]
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
            found += [Import(name, t, where) for t in targets if t.split(".")[0] == "nasflow" and t != name]
    return found


def package_of(module: str) -> str:
    """The layer a module belongs to: 'base', a core package, 'accel', 'strategies',
    'spaces', or 'nasflow' for the package's own __init__."""
    parts = module.split(".")
    if len(parts) == 1:
        return "nasflow"
    return "base" if parts[1] in BASE else parts[1]


def may_import(a: str, b: str) -> bool:
    """May a module of layer `a` import one of layer `b`?"""
    if a == b:
        return True
    if b == "accel" and a not in ACCEL_IMPORTERS:
        return False
    if b == "strategies" and a not in STRATEGIES_IMPORTERS:
        return False
    if b == "nasflow" and a not in NASFLOW_IMPORTERS:
        return False
    if b == "spaces" and a != "cli":
        return False
    if a == "accel":
        return b in ACCEL_IMPORTS
    if a == "strategies":
        return b in STRATEGIES_IMPORTS
    if a == "spaces":
        return b in SPACES_IMPORTS
    if a == "nasflow":
        return b in NASFLOW_IMPORTS
    if a == "cli":
        return True
    return b in CORE and RANK[b] < RANK[a] or b in {"accel", "strategies"}


def _rule(a: str, b: str) -> str:
    if b == "accel":
        return "the compiler and the packages below search never import accel"
    if a in RANK and b in RANK and RANK[a] == RANK[b]:
        return f"{a} and {b} are peers"
    return "imports go down: base < ops < space < compile < tasks < runs < derive < search, train < deploy < cli"


def test_imports_go_down_the_pipeline() -> None:
    mods = _modules()
    bad = [f"{i.where}: {i.source} imports {i.target}: package '{package_of(i.source)}' may not import "
           f"'{package_of(i.target)}' ({_rule(package_of(i.source), package_of(i.target))})"
           for i in _imports(mods)
           if not may_import(package_of(i.source), package_of(i.target))
           and (i.source, i.target) not in KNOWN_EXCEPTIONS]
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    mods = _modules()
    graph = nx.DiGraph()
    where: dict[tuple[str, str], str] = {}
    for i in _imports(mods):
        if i.target in mods and (i.source, i.target) not in KNOWN_EXCEPTIONS:
            graph.add_edge(i.source, i.target)
            where.setdefault((i.source, i.target), i.where)
    cycles = list(nx.simple_cycles(graph))
    shown = [" -> ".join(f"{a} ({where[a, b]})" for a, b in zip(c, c[1:] + c[:1])) + f" -> {c[0]}"
             for c in cycles[:5]]
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(shown)


def test_known_exceptions_still_exist() -> None:
    """An exception whose import is gone must leave KNOWN_EXCEPTIONS, or it would hide a
    future break of the same rule."""
    present = {(i.source, i.target) for i in _imports(_modules())}
    gone = [f"{a} -> {b}" for a, b in KNOWN_EXCEPTIONS if (a, b) not in present]
    assert not gone, f"no longer imported, remove from KNOWN_EXCEPTIONS in {Path(__file__).name}: {gone}"


def test_the_rules_catch_what_they_forbid() -> None:
    # the checker itself: what the layering forbids is refused, what it allows is not
    assert not may_import("compile", "accel") and may_import("accel", "compile")
    assert not may_import("search", "train") and not may_import("train", "search")
    assert not may_import("space", "compile") and may_import("compile", "space")
    assert not may_import("ops", "space") and may_import("space", "ops")
    assert not may_import("runs", "derive") and not may_import("derive", "accel")
    assert not may_import("strategies", "train") and may_import("strategies", "search")
    assert not may_import("deploy", "cli") and not may_import("spaces", "cli") and may_import("spaces", "deploy")
    assert not may_import("search", "spaces") and not may_import("base", "ops")
    assert package_of("nasflow.errors") == "base" and package_of("nasflow.spaces.dlsr.task") == "spaces"


def test_nasflow_top_holds_only_the_base_modules() -> None:
    top = {p.name for p in (REPO / "nasflow").iterdir() if p.suffix == ".py"}
    extra = sorted(top - TOP_LEVEL_MODULES)
    assert not extra, (f"nasflow/ holds {extra} at its top; a module belongs in the package of its "
                       "pipeline stage (space, ops, compile, ...); only " + ", ".join(sorted(TOP_LEVEL_MODULES))
                       + " stay at the top")
