"""What `nasflow search` and `nasflow derive` show: a progress bar while searching, then
tables of the genotype, its cost and how softmax(alpha) / softmax(beta) moved."""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress
from rich.table import Table
from rich.text import Text

from nasflow.derive.genotype import Genotype
from nasflow.runs.eta import Eta, Phase
from nasflow.search.derive_run import Derived
from nasflow.search.loop import SearchResult

from .progress_columns import EtaColumn, RateColumn, eta_fields, stage_column

_SHOWN = ("train/loss", "valid/loss", "reg/penalty")


class _GenotypeProgress(Progress):
    """A progress bar with the losses and the current genotype on lines below (the genotype
    of a real space is long)."""

    losses = ""
    genotype = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.losses:
            yield Text(f"  {self.losses}", overflow="fold")
        if self.genotype:
            yield Text(f"  genotype: {self.genotype}", style="cyan", overflow="fold")


class RichReporter:
    """The search loop's Reporter: stage, step, losses (smoothed), steps/s, ETA, genotype.

    `step_cost`: a strategy step's cost in warm-up steps (Strategy.step_cost), the ETA's prior
    until strategy steps are timed."""

    def __init__(self, console: Console, *, step_cost: float = 2.0) -> None:
        self.console = console
        self.step_cost = step_cost
        self.smooth: dict[str, float] = {}
        self.progress: _GenotypeProgress | None = None
        self.task_id: Any = None
        self.warmup = 0
        self.eta: Eta | None = None

    def start(self, step: int, total: int, warmup: int) -> None:
        self.warmup = warmup
        self.eta = Eta([Phase("warm-up", warmup), Phase("search", total, cost=self.step_cost)], start=step)
        self.eta.begin(time.perf_counter())
        self.progress = _GenotypeProgress(
            stage_column(), BarColumn(bar_width=24), MofNCompleteColumn(), RateColumn(), EtaColumn(),
            console=self.console, disable=not self.console.is_terminal)  # no bars into a pipe or file
        self.task_id = self.progress.add_task("search", total=total, completed=step, stage=self._stage(step),
                                              **eta_fields(self.eta))
        self.progress.start()

    def update(self, step: int, logs: dict[str, float], genotype: Genotype | None) -> None:
        assert self.progress is not None and self.eta is not None
        self.eta.tick(step, time.perf_counter())
        for k in _SHOWN:
            if k in logs:  # exponential moving average: one step's loss is noisy
                self.smooth[k] = logs[k] if k not in self.smooth else 0.9 * self.smooth[k] + 0.1 * logs[k]
        self.progress.losses = "  ".join(f"{k} {v:.4g}" for k, v in self.smooth.items())
        if genotype is not None:
            self.progress.genotype = str(genotype)
        self.progress.update(self.task_id, completed=step, stage=self._stage(step),
                             **eta_fields(self.eta))

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _stage(self, step: int) -> str:
        return "search (warm-up)" if step < self.warmup else "search"


def softmax_table(result: SearchResult) -> Table:
    """Each decision's options with their weights (the strategy's relaxation's: softmax by
    default) at the start and the end; the chosen in bold."""
    f = result.weights_name
    table = Table(title=f"{f}(alpha) and {f}(beta): start -> end")
    for col in ("decision", "kind", "option", "start", "end", "change"):
        table.add_column(col, justify="right" if col in ("start", "end", "change") else "left")
    chosen = {**{k: result.genotype.ops(k) for k in result.genotype.choices}, **result.genotype.edges}
    for label, d in result.graph.decisions.items():
        end = result.softmax[label]
        start = result.initial_softmax.get(label, [float("nan")] * len(end))
        for i, option in enumerate(d.options):
            style = "bold green" if option in chosen.get(label, []) else None
            table.add_row(label if i == 0 else "", d.kind if i == 0 else "", option, f"{start[i]:.3f}",
                          f"{end[i]:.3f}", f"{end[i] - start[i]:+.3f}", style=style)
        table.add_section()
    return table


def cost_table(derived: Derived, title: str) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for label in derived.genotype.choices:
        table.add_row(label, " + ".join(derived.genotype.ops(label)))  # several: their sum
    for label, inputs in derived.genotype.edges.items():
        table.add_row(label, " + ".join(inputs))
    for label, number in derived.genotype.values.items():
        table.add_row(label, str(number))
    table.add_section()
    h, w = derived.output_size
    table.add_row("params", f"{derived.params:,}")
    table.add_row("Multi-Adds", f"{_count(derived.madds)} (for a {w}x{h} output)")
    return table


def _count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3f}{unit}"
    return str(n)
