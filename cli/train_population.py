"""`nasflow train` of a population: every derived architecture of a set of searches, one command.

    nasflow train runs/seeds/*/derived            each runs/seeds/seed-N/derived -> seed-N/retrained
    nasflow train runs/seeds --executor ray       a population folder stands for its runs' derived/

What is retrained is search/retrain_targets.py's (RUN/derived into RUN/retrained, where
`nasflow report` looks for it); how, train/population.py's (one after another, `--parallel`
processes, or Ray tasks; ROOT/population-train.json records what finished, so the same command
run again continues the rest). Here: whether the command is a population, the lines printed
while it runs, the table at the end and the exit code.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nasflow.errors import NasflowError
from nasflow.runs.population import SeedOutcome
from nasflow.search.retrain_targets import ARCH_FILE, DERIVED, RETRAINED, Target
from nasflow.train.config import TrainConfig
from nasflow.train.population import record_root, run_name, run_population
from nasflow.train.run_dir import TrainRunDir


def is_population(archs: list[Path], executor: str, parallel: int | None, ray_address: str | None,
                  cpus_per_run: float | None, gpus_per_run: float | None, memory_per_run: str | None = None) -> bool:
    """Whether `nasflow train ARCH...` retrains a population: several architectures, a search run
    or population folder, or an executor's option given. Ray's options are checked here, each
    mistake one line before any architecture is looked at."""
    ray_options = (ray_address, cpus_per_run, gpus_per_run, memory_per_run)
    if executor == "local" and any(v is not None for v in ray_options):
        from .population_view import RAY_ONLY

        raise NasflowError(RAY_ONLY)
    if memory_per_run is not None:
        from nasflow.runs.ray_tasks import parse_memory

        parse_memory(memory_per_run)
    if len(archs) > 1 or executor != "local" or any(
            v is not None for v in (parallel, *ray_options)):
        return True
    return bool(archs) and archs[0].is_dir() and not (archs[0] / ARCH_FILE).is_file() and (
        (archs[0] / "config.json").is_file() or any(archs[0].glob(f"*/{DERIVED}")))


def train_population(configs: list[TrainConfig], found: list[Target], executor: str, parallel: int | None,
                     on: tuple[str | None, float | None, float | None, str | None], quiet: bool) -> list[SeedOutcome]:
    """The command: a line per run while they run, one as each ends, a table at the end."""
    import typer

    from nasflow.runs import distributed
    from nasflow.runs.population_ray import RayOptions, check_executor
    from nasflow.runs.ray_tasks import parse_memory

    from .app import console
    from .population_failure import population_failure
    from .population_view import RAY_ONLY, live_runs

    if distributed.launched_by_torchrun():
        raise NasflowError("a population starts its own processes (--parallel, --executor); run it without torchrun")
    check_executor(executor)
    ray_address, cpus_per_run, gpus_per_run, memory_per_run = on
    ray = None
    if executor == "ray":
        memory = parse_memory(memory_per_run) if memory_per_run is not None else None
        ray = RayOptions(address=ray_address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                         memory_per_run=memory)
    elif any(v is not None for v in on):
        raise NasflowError(RAY_ONLY)
    root = record_root(found)
    names = [run_name(root, t) for t in found]
    finished: dict[str, str] = {}
    for t in found:
        if t.derived_now:
            console.print(f"{t.arch.parent.parent}: derived into {t.arch.parent} (nasflow derive)", highlight=False)

    def done(o: SeedOutcome) -> None:
        state = f"[red]failed: {o.error}[/]" if o.error else "done" if o.finished else f"[yellow]stopped at {o.step}[/]"
        finished[names[o.index]] = state
        again = f", restarted from step {', '.join(map(str, o.restarts))}" if o.restarts else ""
        console.print(f"{names[o.index]}: {state} ({o.run_dir}{again})", highlight=False)

    def restarted(name: str, step: int, why: str) -> None:
        console.print(f"{name}: [yellow]continues from its checkpoint at step {step}[/] ({why})", highlight=False)

    title = f"retraining {len(found)} architectures ({executor})"
    with live_runs(names, title, finished) if not quiet else _nothing() as progress:
        outcomes = run_population(configs, found, executor=executor, parallel=parallel, ray=ray,
                                  progress=progress, on_done=done, on_restart=restarted)
    console.print(population_table(outcomes, names, title))
    failed = [(names[o.index], o) for o in outcomes if o.error]
    if failed:  # the same command continues the rest: started retrainings from their checkpoints
        raise NasflowError(population_failure("retrainings", len(found), failed,
                                              [names[o.index] for o in outcomes if o.finished],
                                              "run the same command again: it continues the rest"))
    if len(outcomes) < len(found) or any(not o.finished for o in outcomes):
        console.print("[yellow]stopped[/]; continue with the same command (finished retrainings are kept)")
        raise typer.Exit(130)
    shown = os.path.relpath(root) if root.is_relative_to(Path.cwd()) else root
    console.print(f"each RUN/{RETRAINED} holds its model; compare them: nasflow report {shown}", highlight=False)
    return outcomes


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def population_table(outcomes: list[SeedOutcome], names: list[str], title: str) -> Any:
    """A row per retraining: steps, its best validation (best/meta.json), restarts, state."""
    from rich.table import Table

    from nasflow.runs.modeldir import read_meta

    table = Table(title=title, title_justify="left")
    for col in ("run", "steps", "best", "restarted from", "state"):
        table.add_column(col, justify="right" if col == "steps" else "left")
    for o in outcomes:
        best = ""
        meta_dir = TrainRunDir(o.run_dir).best_path
        if (meta_dir / "meta.json").is_file():
            b = read_meta(meta_dir).get("best") or {}
            if isinstance(b.get("value"), (int, float)):
                best = f"{b['metric']} {b['value']:.4f} (step {b['step']:,})"
        state = "failed" if o.error else "done" if o.finished else "stopped"
        table.add_row(names[o.index], f"{o.step:,}", best, ", ".join(map(str, o.restarts)), state)
    return table
