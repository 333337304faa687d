"""Find a registered thing by name: the registry, then an entry point, then 'module:attr'.

So a strategy or regularizer defined in a user's package is usable by name on the command
line once that package declares the entry point (or is named as 'module:attr'; the module
is looked for on sys.path, then in the current folder).

Trusted imports (the newcomer issue's rule, here because every layer needs it): a module
Python finds on its own was installed, so it may run; one found only in the current folder
(or beside a space file: nasflow.space.imports) is code that came with the files and runs
only with `nasflow --trust-imports` or NASFLOW_TRUST_IMPORTS=1.
"""
from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TypeVar

from nasflow.errors import NasflowError, NasflowWarning
from nasflow.registry import Registry, UnknownNameError

T = TypeVar("T")

ENV = "NASFLOW_TRUST_IMPORTS"
HOW_TO_TRUST = f"run `nasflow --trust-imports ...` or set {ENV}=1 if you trust that code"
_trust: bool | None = None  # set by the CLI's --trust-imports; None: the environment decides


def set_trust_imports(trust: bool | None) -> None:
    """Trust (or not) modules beside space files or in the current folder for this process;
    None: back to the setting."""
    global _trust
    _trust = trust


def trust_imports() -> bool:
    if _trust is not None:
        return _trust
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


def beside(module: str, folders: list[Path]) -> Path | None:
    """The file or package of `module`'s top-level name in the first of `folders` holding one."""
    top = module.partition(".")[0]
    for folder in folders:
        for candidate in (folder / f"{top}.py", folder / top / "__init__.py", folder / top):
            if candidate.exists():
                return candidate
    return None


def lookup(registry: Registry[T], group: str, name: str, folders: Sequence[Path] = ()) -> T:
    """`name` in `registry`, else an entry point of `group` under it, else 'module:attr' with
    the module installed, or found in one of `folders` (a run directory, which carries its copy)
    or the current folder, trusted."""
    if name in registry:
        return registry.get(name)
    found = entry_points(group=group)
    for ep in found:
        if ep.name == name:
            return ep.load()
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return getattr(_import(module, folders), attr)
        except (ImportError, AttributeError) as exc:
            raise NasflowError(f"cannot load {registry.kind} '{name}': {exc}") from None
    raise UnknownNameError(registry.unknown_message(name, [ep.name for ep in found])
                           + "; or name one as 'module:attr'")


def _import(module: str, folders: Sequence[Path] = ()):  # -> the module
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        places = [Path(f).resolve() for f in folders] + [Path(cwd)]
        if exc.name != module.partition(".")[0]:
            raise
        for folder in places:
            local = beside(module, [folder])
            if local is not None and str(folder) not in sys.path:
                break
        else:
            raise
        where = "the current folder" if folder == Path(cwd) else f"'{folder}'"
        if not trust_imports():
            raise NasflowError(f"'{module}' is code in {where} ({local}), not an installed "
                               f"package, so it is not imported; {HOW_TO_TRUST}") from None
        sys.path.insert(0, str(folder))  # as `python -m` would: a module beside the user, for this import only
        try:
            found = importlib.import_module(module)
        finally:
            sys.path.remove(str(folder))
        _LOCAL_PLUGINS[module.partition(".")[0]] = local.parent if local.name == "__init__.py" else local
        warnings.warn(NasflowWarning(f"ran code from {where}: imported {module} (trusted imports)"),
                      stacklevel=4)
        return found


def import_plugin(module: str, folders: Sequence[Path] = ()):  # -> the module
    """Import `module`: installed, or found in `folders` or the current folder (trusted only)."""
    return _import(module, folders)


# module -> the file or package a 'module:attr' plugin was imported from, outside installed
# packages (this process): a run started with `--strategy module:Class` keeps a copy.
_LOCAL_PLUGINS: dict[str, Path] = {}


def local_plugin(name: str) -> Path | None:
    """The file or package folder of the module of 'module:attr' `name`, when this process
    imported it from a folder (not installed); None otherwise."""
    if ":" not in name:
        return None
    return _LOCAL_PLUGINS.get(name.partition(":")[0].partition(".")[0])
