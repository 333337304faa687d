"""The `nasflow` command line: thin typer commands over library functions.

Each group of commands lives in its own module and adds itself to the shared `app`.
"""
from __future__ import annotations

from . import bench_cmds, export_cmds, profile_cmds, search_cmds, space_cmds, sr_cmds, train_cmds, report_cmds, upscale_cmds  # noqa: F401  (they register commands)
from . import strategy_cmds  # noqa: F401
from .app import app, run

__all__ = ["app", "main"]


def main() -> None:
    run()


if __name__ == "__main__":  # `python -m nasflow.cli.main ...`, e.g. under torchrun -m
    main()
