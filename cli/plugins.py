"""Commands contributed by installed packages: the `nasflow.commands` entry-point group.

Each entry point names a function `register(app: typer.Typer)` that adds its commands
(declared in the package's pyproject.toml, e.g.
`[project.entry-points."nasflow.commands"] dlsr = "nasflow.spaces.dlsr.cli:register"`).
A plugin that fails to load is reported on stderr and skipped, so one broken package
does not take the other commands down.
"""
from __future__ import annotations

from importlib.metadata import entry_points

import typer

GROUP = "nasflow.commands"


def register_plugin_commands(app: typer.Typer) -> list[str]:
    """Call every `nasflow.commands` entry point's register(app); the names loaded."""
    loaded: list[str] = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            ep.load()(app)
        except Exception as exc:  # a broken plugin: the core commands still work
            from .app import err_console

            err_console.print(f"[yellow]warning:[/] commands '{ep.name}' ({ep.value}) not loaded: {exc}",
                              highlight=False)
            continue
        loaded.append(ep.name)
    return loaded
