"""Load a space file (or a model directory's architecture) with CLI-style overrides, and
import the modules it names (`imports:`), so the ops and tasks they register are there."""
from __future__ import annotations

from pathlib import Path

from nasflow.errors import SpaceError
from nasflow.space.builtin import builtin_space, unknown_space_hint
from nasflow.space.graph import Graph, build_graph
from nasflow.space.imports import import_space_modules
from nasflow.space.schema import Space

ARCH_FILE = "arch.yaml"


def resolve_space_path(path: str | Path) -> Path:
    """A space file, a directory holding one (a model or run directory), or, when no such
    path exists, a built-in space's name (`dlsr`, `dlsr/dlsr-s`: nasflow.space.builtin)."""
    p = Path(path)
    if p.is_dir():
        for name in (ARCH_FILE, "space.yaml"):
            if (p / name).is_file():
                return p / name
        raise SpaceError(f"'{p}' is a directory without {ARCH_FILE} or space.yaml; pass a space file")
    if not p.exists():
        shipped = builtin_space(str(path))
        if shipped is not None:
            return shipped
        raise SpaceError(f"'{p}' does not exist; {unknown_space_hint()}")
    return p


def load_space(path: str | Path, overrides: dict[str, int] | None = None) -> Space:
    """The space in `path` (a file, a model or run directory, or a built-in name such as
    `dlsr`), its `imports:` imported, with `overrides` set as `--set` does."""
    space = Space.from_yaml(resolve_space_path(path))
    import_space_modules(space)
    return space.with_params(overrides) if overrides else space


def load_graph(path: str | Path, overrides: dict[str, int] | None = None) -> Graph:
    """`build_graph(load_space(path, overrides))`: the space expanded and validated."""
    return build_graph(load_space(path, overrides))
