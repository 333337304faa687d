"""Import the modules a space names in `imports:` (they register ops, tasks, ...).

A module is looked for beside the space file first, then in the current folder, then on
sys.path, so a space and its module can sit together in any folder.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from nasflow.errors import SpaceError
from nasflow.space.schema import Space


def import_space_modules(space: Space) -> None:
    """Import `space.imports`; one SpaceError naming the file:line of a module that fails."""
    if not space.imports:
        return
    here = str(Path(space.source.file).resolve().parent) if space.source.file else None
    for folder in (here, os.getcwd()):
        if folder is not None and folder not in sys.path:
            sys.path.insert(0, folder)
    for i, module in enumerate(space.imports):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SpaceError(f"cannot import module '{module}' ({exc}); put it beside the space file, in "
                             "the current folder, or on PYTHONPATH", space.source.where(("imports", i))) from None
