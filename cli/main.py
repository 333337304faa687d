"""The `nasflow` command line: thin typer commands over library functions.

Each group of commands lives in its own module and adds itself to the shared `app`.
Installed packages add theirs through the `nasflow.commands` entry-point group: each entry
point is a function `register(app: typer.Typer)` (the SR task's `import` and `upscale`:
nasflow.spaces.dlsr.cli).

The command modules import torch, so they are imported when `app` is first asked for, not by
`nasflow --help` / `--version` (cli/fast_help.py answers those); running a core command
imports its own module only (`validate` and `cost` then import no torch).
"""
from __future__ import annotations

import sys
from typing import Any

__all__ = ["app", "main", "run"]
_loaded = False


def _load_commands() -> None:
    global _loaded
    if _loaded:
        return
    from . import bench_cmds, eval_cmds, export_cmds, profile_cmds, search_cmds, space_cmds, train_cmds, report_cmds  # noqa: F401  (they register commands)
    from . import strategy_cmds  # noqa: F401
    from . import draw_cmds, plot_cmds, sweep_cmds  # noqa: F401  (issue 14; matplotlib is imported only when a figure is drawn)
    from .app import add_short_help, app
    from .examples import add_examples
    from .order import order_commands
    from .plugins import register_plugin_commands

    register_plugin_commands(app)
    add_examples(app)
    add_short_help(app)  # as run() does, so `from nasflow.cli.main import app` prints the same help
    order_commands(app)  # the user's order, not the import order above
    _loaded = True


def __getattr__(name: str) -> Any:  # `from nasflow.cli.main import app`: the app with every command
    if name in ("app", "run"):
        _load_commands()
        from . import app as app_module

        return getattr(app_module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    from .fast_help import answer, command_module, completion_args

    if answer(sys.argv[1:]):
        return
    completing = completion_args()  # the shell completing a command's options: its words
    module = command_module(sys.argv[1:] if completing is None else completing)
    if module is None:  # a plugin's command, a typo, help of a group: every command
        _load_commands()
    else:  # that command's module alone (and the plugins, which import nothing heavy)
        import importlib

        from .app import app
        from .plugins import register_plugin_commands

        importlib.import_module(f"{__package__}.{module}")
        register_plugin_commands(app)
    from .app import run

    run()


if __name__ == "__main__":  # `python -m nasflow.cli.main ...`, e.g. under torchrun -m
    main()
