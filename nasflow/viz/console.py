"""The terminal console every command prints through (cli/ and the spaces' own commands):
plain text where plain text is wanted, styled output on a terminal. Here, below cli/, so a
space package's commands (nasflow.spaces.dlsr's `import`, `upscale`, `compare`,
`prepare-data`) share it; a space may not import cli/."""
from __future__ import annotations

import os

from rich.console import Console


def no_color() -> bool:
    """NO_COLOR set (https://no-color.org): no ANSI styling at all, tables in ASCII."""
    return os.environ.get("NO_COLOR", "") != ""


class PlainAwareConsole(Console):
    """A rich console that writes plain text where plain text is wanted: into a pipe or a
    file (rich then drops the ANSI codes itself) or with NO_COLOR set, no ANSI styling and
    tables drawn in ASCII, not box-drawing characters. Decided on each render, so a console
    made at import follows where stdout points when it prints (CliRunner swaps it)."""

    def __init__(self, **kwargs: object) -> None:
        if no_color():
            kwargs.setdefault("color_system", None)  # bold and dim too, not only colours
        super().__init__(**kwargs)  # type: ignore[arg-type]

    @property
    def encoding(self) -> str:
        # rich substitutes ASCII boxes (tables, panels) and bars when the encoding is not UTF
        return "ascii" if no_color() or not self.is_terminal else super().encoding


console = PlainAwareConsole()
err_console = PlainAwareConsole(stderr=True)
