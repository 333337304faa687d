"""`nasflow strategies`: the registered search strategies and their options (a thin shell
over nasflow.strategies.strategy_catalog)."""
from __future__ import annotations

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
