"""Find a registered thing by name: the registry, then an entry point, then 'module:attr'.

So a strategy or regularizer defined in a user's package is usable by name on the command
line once that package declares the entry point (or is named as 'module:attr'; the module
is looked for on sys.path, then in the current folder).
"""
from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points
from typing import TypeVar

from nasflow.errors import NasflowError
from nasflow.registry import Registry, UnknownNameError

T = TypeVar("T")


def lookup(registry: Registry[T], group: str, name: str) -> T:
    if name in registry:
        return registry.get(name)
    found = entry_points(group=group)
    for ep in found:
        if ep.name == name:
            return ep.load()
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return getattr(_import(module), attr)
        except (ImportError, AttributeError) as exc:
            raise NasflowError(f"cannot load {registry.kind} '{name}': {exc}") from None
    raise UnknownNameError(registry.unknown_message(name, [ep.name for ep in found])
                           + "; or name one as 'module:attr'")


def _import(module: str):  # -> the module
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        if exc.name != module.partition(".")[0] or cwd in sys.path:
            raise
        sys.path.insert(0, cwd)  # as `python -m` would: a module beside the user
        try:
            return importlib.import_module(module)
        finally:  # for this import only: the folder's other files stay out of later imports
            sys.path.remove(cwd)
