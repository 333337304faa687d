"""The order `nasflow --help` lists the commands in: a user's (the main job first, then what
they do with its model and runs, then spaces and tools in a panel of their own), not the
order Python happens to import the command modules in. Applied to the full app, to the fast
help's placeholders and to the docs' command reference alike."""
from __future__ import annotations

import typer

from .examples import command_name

# search -> derive -> train -> eval is the main job; upscale/export/compare use its model.
COMMAND_ORDER = ("search", "derive", "train", "eval", "upscale", "export", "import", "compare",
                 "report", "sweep", "plot",
                 "spaces", "validate", "cost", "draw", "ops", "strategies", "profile", "bench",
                 "prepare-data", "check")
TOOLS = frozenset(COMMAND_ORDER[COMMAND_ORDER.index("spaces"):])
TOOLS_PANEL = "Spaces, costs and tools"


def order_commands(app: typer.Typer) -> None:
    """Sort the registered commands into COMMAND_ORDER (a plugin's own commands after them,
    in the order they came) and put the tools in their own help panel; idempotent."""
    rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
    app.registered_commands.sort(key=lambda info: rank.get(command_name(info), len(rank)))  # stable
    for info in app.registered_commands:
        if command_name(info) in TOOLS and not isinstance(info.rich_help_panel, str):  # unset: typer's Default
            info.rich_help_panel = TOOLS_PANEL
