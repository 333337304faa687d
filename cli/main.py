"""The `nasflow` command line: thin typer commands over library functions.

Each group of commands lives in its own module and adds itself to the shared `app`.
Installed packages add theirs through the `nasflow.commands` entry-point group: each entry
point is a function `register(app: typer.Typer)` (the SR task's `import` and `upscale`:
nasflow.spaces.dlsr.cli).
"""
from __future__ import annotations

from . import bench_cmds, eval_cmds, export_cmds, profile_cmds, search_cmds, space_cmds, train_cmds, report_cmds  # noqa: F401  (they register commands)
from . import strategy_cmds  # noqa: F401
from . import draw_cmds, plot_cmds, sweep_cmds  # noqa: F401  (issue 14; matplotlib is imported only when a figure is drawn)
from .app import app, run
from .plugins import register_plugin_commands

register_plugin_commands(app)

__all__ = ["app", "main"]


def main() -> None:
    run()


if __name__ == "__main__":  # `python -m nasflow.cli.main ...`, e.g. under torchrun -m
    main()
