"""`nasflow plot`: a thin shell over nasflow.viz.run_plots (figures of runs into RUN/plots/)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, console


@app.command()
def plot(
    runs: Annotated[list[Path], typer.Argument(
        help="Search or training run directories (a --seeds or sweep folder stands for its runs).")],
    svg: Annotated[bool, typer.Option("--svg/--no-svg", help="Write SVG beside each PNG.")] = True,
) -> None:
    """Figures of a run into RUN/plots/: softmax(alpha) per choice and softmax(beta) per dense
    node over steps (a strategy's own weights function in its place, e.g. sigmoid), losses and the regularizer term, the genotype's history. Works on a run
    still in progress. Needs matplotlib: pip install 'nasflow\\[plot]'."""
    from nasflow.viz.run_plots import plot_runs  # matplotlib is imported only here

    for result in plot_runs(runs, svg=svg):
        h = result.history
        pngs = " ".join(p.name for p in result.files if p.suffix == ".png")
        state = "" if h.finished else f" [yellow](in progress: step {h.last_step} of {h.total_steps})[/]"
        skipped = f"; {h.skipped} unreadable line(s) of metrics.jsonl skipped" if h.skipped else ""
        folder = result.files[0].parent
        console.print(f"{result.run}{state}: {pngs} in [bold]{folder}[/]{skipped}", highlight=False, soft_wrap=True)
