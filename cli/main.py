"""The `nasflow` command line: thin typer commands over library functions.

Each group of commands lives in its own module and adds itself to the shared `app`.
"""
from __future__ import annotations

from . import bench_cmds, search_cmds, space_cmds, sr_cmds  # noqa: F401  (they register commands)
from .app import app, run

__all__ = ["app", "main"]


def main() -> None:
    run()
