"""`nasflow strategies`: the registered search strategies and their options (a thin shell
over nasflow.strategies.strategy_catalog)."""
from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from nasflow.strategies import strategy_catalog

from .app import app, console


@app.command()
def strategies() -> None:
    """List the search strategies: name, what it does, its options (--strategy-opt key=value)."""
    table = Table(title="search strategies (--strategy NAME --strategy-opt key=value)")
    table.add_column("strategy", style="bold")
    table.add_column("what it does")
    table.add_column("options (default)")
    for info in strategy_catalog():
        options = "\n".join(f"{n}: {t} = {d!r}" + (f"  ({desc})" if desc else "")
                            for n, t, d, desc in info.options) or "none"
        table.add_row(info.name, info.summary, options)
    console.print(table)


@app.command("check")
def check(module: str = typer.Argument(..., help="The module to check: it is imported, and every op, strategy "
                                                 "and task it registers is checked.")) -> None:
    """Check your plugins against nasflow's contracts (the conformance kit): each op's declared
    params and Multi-Adds against counting its module; each strategy stopped and resumed on a
    tiny space against an uninterrupted run, its state round trip, its derivation; each task's
    batches resumed, its metrics declared, its export sample. A table of what holds, one line
    per failure; exit 2 when any fails. The same checks: nasflow.search.conformance.
    """
    from nasflow.search.conformance import check_module

    checks = check_module(module)
    table = Table(title=f"nasflow check {module}")
    table.add_column("plugin", style="bold")
    table.add_column("check")
    table.add_column("holds")
    for c in checks:
        table.add_row(c.plugin, c.what, "[green]yes[/]" if c.ok else "[red]no[/]")
    console.print(table)
    failed = [c for c in checks if not c.ok]
    for c in failed:
        console.print(f"[red]fail:[/] {escape(c.line())}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(2)
