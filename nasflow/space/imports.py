"""Import the modules a space names in `imports:` (they register ops, tasks, ...), and
decide which of them may run.

A module Python finds on its own (an installed package, one on PYTHONPATH, nasflow's own
spaces, entry points) is trusted: installing it agreed to run it. A module found only beside
the space file or in the current folder is code that came with the file, so it runs only when
the user says so: `nasflow --trust-imports ...`, or NASFLOW_TRUST_IMPORTS=1 (the setting, for
scripts and shells). Then it is imported with those folders on sys.path for the import alone
(never left there) and named to the user (a NasflowWarning). Untrusted, it is not imported; an
op it would register is then one error naming the module and how to allow it
(SpaceImports.unknown_op_hint).

The same rule covers a module a space names elsewhere, as `task: module:attr`
(import_named_module, called when the task is looked up): found only beside the space file
or in the current folder, it is imported only when trusted, else one error names it.

Space.from_data imports them before validating the nodes (a node kind a module registers
must be known to read its nodes); build_graph imports them again for spaces built in Python
(a module already imported is not run again).
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nasflow._plugins import ENV, HOW_TO_TRUST, beside, set_trust_imports, trust_imports
from nasflow.errors import NasflowWarning, SpaceError
from nasflow.space.yaml_io import SourceMap

# Beside a space file, in a run directory, a derived architecture's or a model's folder: the
# modules it imports from there are copied along (copy_local_imports), so the folder derives,
# resumes and evaluates from anywhere. Copying does not make them trusted: the copy is code
# beside a space file like the original, and runs only with the same consent.
_LOCAL: dict[str, Path] = {}  # module -> the file or package it was imported from (this process)

__all__ = ["ENV", "HOW_TO_TRUST", "SpaceImports", "copy_into", "copy_local_imports", "import_modules", "import_space_modules",
           "local_imports", "set_trust_imports", "trust_imports"]


_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _check_module_name(module: object, where: str | None) -> None:
    """One SpaceError for what importlib cannot take as an absolute module name (a relative
    '.ops', a path 'ops.py' or 'dir/ops', an empty or non-text entry)."""
    if isinstance(module, str) and _MODULE.match(module) and module.isascii():
        return
    hint = ""
    if isinstance(module, str) and module.startswith("."):
        hint = f" (relative names have no package to be relative to: write '{module.lstrip('.')}')"
    elif isinstance(module, str) and ("/" in module or module.endswith(".py")):
        hint = f" (a module name, not a path: write '{module.removesuffix('.py').replace('/', '.')}')"
    raise SpaceError(f"{module!r} is not a module name{hint}; imports: lists absolute module names such as "
                     "'myops' or 'mypkg.ops'", where)


def _installed(module: str, folders: list[Path]) -> bool:
    """Whether Python finds `module`'s top-level name other than in `folders` (already
    imported counts: no code runs again). Only the top-level name is looked up: finding a
    submodule would import its parents."""
    top = module.partition(".")[0]
    if top in sys.modules:
        return True
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.origin not in (None, "namespace"):
        where = Path(spec.origin)
        if where.name == "__init__.py":
            where = where.parent  # a package: its folder
    else:
        where = Path(next(iter(spec.submodule_search_locations or []), "."))
    return where.resolve().parent not in folders


@dataclass
class SpaceImports:
    """What importing a space's modules did: `imported` (all), `from_folder` (those that
    ran from the space's folder, trusted), `untrusted` (found there, not imported)."""

    imported: list[str] = field(default_factory=list)
    from_folder: list[str] = field(default_factory=list)
    untrusted: dict[str, Path] = field(default_factory=dict)

    def unknown_op_hint(self) -> str:
        """Said after 'unknown op': the modules that might have registered it."""
        if not self.untrusted:
            return ""
        names = ", ".join(f"'{m}' ({p})" for m, p in self.untrusted.items())
        return (f"; the space imports {names}, which may register it, but it was not imported because "
                f"it is code found beside the space file or in the current folder: {HOW_TO_TRUST}")


class _WithImports(Protocol):  # a nasflow.space.schema.Space (which imports this module)
    imports: list[str]

    @property
    def source(self) -> SourceMap: ...


def import_space_modules(space: _WithImports) -> SpaceImports:
    """Import what may run of `space.imports` (see the module docstring); one SpaceError
    naming the file:line of a module that cannot be imported."""
    return import_modules(space.imports, space.source)


def import_modules(modules: list[str], source: SourceMap, folders: list[Path] | None = None) -> SpaceImports:
    """Import what may run of `modules`, a space's `imports:` read from `source` (`folders`:
    where code that came with it is looked for; default: the file's folder and the current one)."""
    result = SpaceImports()
    if not modules:
        return result
    if folders is None:
        folders = [Path(source.file).resolve().parent] if source.file else []
        folders += [p for p in [Path.cwd().resolve()] if p not in folders]
    for i, module in enumerate(modules):
        _check_module_name(module, source.where(("imports", i)))
        local = beside(module, folders)
        installed = _installed(module, folders)
        if not installed and local is not None and not trust_imports():
            result.untrusted[module] = local
            continue
        added = [] if installed else [str(f) for f in folders if str(f) not in sys.path]
        sys.path[:0] = added
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SpaceError(f"cannot import module '{module}' ({exc}); put it beside the space file, in "
                             "the current folder, or on PYTHONPATH", source.where(("imports", i))) from None
        finally:
            for folder in added:  # their other files stay out of every later import
                sys.path.remove(folder)
        result.imported.append(module)
        if not installed:
            result.from_folder.append(module)
            if local is not None:
                _LOCAL.setdefault(module, local.parent if local.name == "__init__.py" else local)
    if result.from_folder:
        warnings.warn(NasflowWarning(f"ran code that came with the space file: imported "
                                     f"{', '.join(result.from_folder)} (trusted imports)"), stacklevel=3)
    return result


def import_named_module(module: str, what: str, source: SourceMap | None = None) -> None:
    """Import `module`, named by `what` (e.g. "task 'featreg:Regression'") in a space read from
    `source`, under the rule above: nothing happens to an installed module (its lookup
    imports it) or to one found nowhere (its lookup says so); one found only beside the space
    file or in the current folder is imported (and named) when trusted, else one SpaceError
    names it and how to allow it."""
    folders = [Path(source.file).resolve().parent] if source is not None and source.file else []
    folders += [p for p in [Path.cwd().resolve()] if p not in folders]
    local = beside(module, folders)
    if local is None or _installed(module, folders):
        return
    where = source.where(("task",)) if source is not None else None
    if not trust_imports():
        raise SpaceError(f"{what} names module '{module}' ({local}), code found beside the space file or "
                         f"in the current folder; it was not imported: {HOW_TO_TRUST}", where)
    imported = import_modules([module], source or SourceMap(None), folders)
    if not imported.imported:  # pragma: no cover - trusted and found: imported or raised
        raise SpaceError(f"{what}: cannot import module '{module}'", where)


def local_imports(space: _WithImports) -> dict[str, Path]:
    """The modules of `space.imports` this process imported from a space's folder or the
    current folder (not installed ones): {module: its file or package folder}."""
    return {m: _LOCAL[m] for m in space.imports if m in _LOCAL}


def copy_local_imports(space: _WithImports, folder: Path) -> list[Path]:
    """Copy the space's local imports (local_imports) into `folder`, where a space file
    written there finds them; returns what was written. Copies stay untrusted code."""
    return [dest for path in local_imports(space).values() if (dest := copy_into(path, folder)) is not None]


def copy_into(path: Path, folder: Path) -> Path | None:
    """Copy a module's file or package folder `path` into `folder`; the copy, or None when
    `path` is already there."""
    dest = folder / path.name
    if path.resolve() == dest.resolve():
        return None
    if path.is_dir():
        shutil.copytree(path, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        shutil.copy2(path, dest)
    return dest
