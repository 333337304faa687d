"""What `nasflow train` shows: a progress bar while training (losses, lr, last validation),
then a summary table of the run."""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress
from rich.table import Table
from rich.text import Text

from nasflow.runs.eta import Eta, Phase
from nasflow.train.loop import TrainResult
from nasflow.train.warmstart import InitReport

from .progress_columns import EtaColumn, RateColumn, eta_fields, stage_column


class _TrainProgress(Progress):
    """A progress bar with the smoothed losses and the last validation on a line below."""

    status = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.status:
            yield Text(f"  {self.status}", overflow="fold")


class TrainReporter:
    """The training loop's reporter: stage, step, losses (smoothed), steps/s, ETA, validation.

    `validate_every`: the run's validation period, so the ETA counts the validations to come
    (each timed as it runs)."""

    def __init__(self, console: Console, *, validate_every: int | None = None) -> None:
        self.console = console
        self.validate_every = validate_every
        self.smooth: dict[str, float] = {}
        self.valid: dict[str, float] = {}
        self.progress: _TrainProgress | None = None
        self.task_id: Any = None
        self.eta: Eta | None = None

    def start(self, step: int, total: int) -> None:
        self.eta = Eta([Phase("train", total)], start=step, every=self.validate_every)
        self.eta.begin(time.perf_counter())
        self.progress = _TrainProgress(
            stage_column(), BarColumn(bar_width=24), MofNCompleteColumn(), RateColumn(), EtaColumn(),
            console=self.console, disable=not self.console.is_terminal)  # no bars into a pipe or file
        self.task_id = self.progress.add_task("train", total=total, completed=step,
                                              stage="train",
                                              **eta_fields(self.eta))
        self.progress.start()

    def update(self, step: int, logs: dict[str, float], valid: dict[str, float] | None) -> None:
        assert self.progress is not None and self.eta is not None
        self.eta.tick(step, time.perf_counter(), event=valid is not None)
        for k, v in logs.items():  # exponential moving average: one step's loss is noisy
            self.smooth[k] = v if k not in self.smooth else 0.9 * self.smooth[k] + 0.1 * v
        if valid is not None:
            self.valid = {**valid, "step": step}
        losses = "  ".join(f"{k} {v:.4g}" for k, v in self.smooth.items())
        shown = "  ".join(f"{k} {v:.4g}" for k, v in self.valid.items() if k != "step")
        self.progress.status = losses + (f"   valid @ {self.valid['step']}: {shown}" if self.valid else "")
        self.progress.update(self.task_id, completed=step, **eta_fields(self.eta))

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def summary_table(result: TrainResult) -> Table:
    space = result.space
    table = Table(title=f"trained {space.name} for {result.step:,} steps", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    if "scale" in space.params:
        table.add_row("scale", f"x{space.params['scale']}")
    table.add_row("params", f"{result.params:,}")
    if result.init is not None:
        table.add_row("warm start", f"{len(result.init.loaded)} tensors from {result.init.source}")
    table.add_section()
    for k, v in result.valid.items():
        table.add_row(f"final {k}", f"{v:.4f}")
    if result.best is not None:
        b = result.best
        table.add_row(f"best {b['metric']}", f"{b['value']:.4f} (step {b['step']:,})")
    table.add_section()
    if result.model_dir is not None:
        table.add_row("model", str(result.model_dir))
    if result.best_dir is not None:
        table.add_row("best model", str(result.best_dir))
    table.add_row("run directory", str(result.run_dir))
    return table


def warm_start_lines(init: InitReport) -> list[str]:
    """What --init-from did, one line per tensor it could not use (printed whole, not in a
    table cell that would wrap the shapes)."""
    lines = [f"warm start from {init.source}: {len(init.loaded)} tensors loaded, "
             f"{len(init.fresh)} trained from scratch"]
    lines += [f"  skipped {name}: {why}" for name, why in init.skipped.items()]
    return lines
