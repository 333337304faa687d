"""`nasflow draw`: a thin shell over nasflow.viz.draw (an architecture or supernet as a picture)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, console


@app.command()
def draw(
    source: Annotated[Path, typer.Argument(metavar="SPACE_OR_MODEL",
        help="A space or architecture file, a built-in name (dlsr, dlsr/dlsr: nasflow spaces), a "
             "model directory or a run directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The picture to write: FILE.png or FILE.svg.")],
    layout: Annotated[str, typer.Option(
        help="auto (graphviz's dot for a space without blocks when installed, else nasflow's), graphviz "
             "or nasflow.")] = "auto",
) -> None:
    """Draw an architecture (or a supernet, its decisions in red frames): nodes by op, edges
    by data flow with their channel counts, cells as clusters. Needs matplotlib:
    pip install 'nasflow\\[plot]'."""
    from nasflow.viz.draw import draw as draw_graph  # matplotlib is imported only here

    path, placed, graph = draw_graph(source, out, layout)
    kind = f"supernet, {len(graph.decisions)} decisions" if graph.decisions else "architecture"
    console.print(f"{graph.space.name} ({kind}, {len(graph.nodes)} nodes, {placed.engine} layout) -> "
                  f"[bold]{path}[/]", highlight=False, soft_wrap=True)
