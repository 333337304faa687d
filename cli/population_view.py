"""The command line of populations on an executor (`search --seeds`, `sweep`, `train` of several
architectures): the options that choose Ray and the live table of its runs (a line per run:
stage, step, node, time left)."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.live import Live
from rich.table import Table

from nasflow.errors import NasflowError
from nasflow.runs.population_ray import RayOptions, check_executor
from nasflow.runs.ray_tasks import parse_memory

from .app import console

EXECUTOR_HELP = ("local: processes on this machine (--parallel); ray: one Ray task per run on a Ray cluster "
                 "(pip install 'nasflow\\[ray]'; OUT on storage every node sees; the same command continues "
                 "a stopped population).")
RAY_ADDRESS_HELP = "With --executor ray: a running cluster, auto or HOST:PORT (default: start a local Ray here)."
CPUS_HELP = "With --executor ray: CPUs each run asks for (default: 1 with a GPU, else up to 8)."
GPUS_HELP = "With --executor ray: GPUs each run asks for (default: 1 when the cluster has GPUs and --device is not cpu)."
MEMORY_HELP = ("With --executor ray: memory each run asks for, 512M or 2G (K, M, G, T: powers of 1024); Ray starts "
               "a run on a node with that much free for tasks (default: none reserved).")

RAY_ONLY = "--ray-address, --cpus-per-run, --gpus-per-run and --memory-per-run need --executor ray"


def _eta(info: dict[str, Any]) -> str:
    done = info.get("step", 0) - info.get("first", 0)
    if done <= 0 or info.get("step", 0) >= info.get("total", 0):
        return "-"
    left = (info["total"] - info["step"]) * (info["time"] - info["began"]) / done
    return time.strftime("%H:%M:%S", time.gmtime(left))


def runs_table(runs: dict[str, dict[str, Any]], names: list[str], done: dict[str, str],
               title: str = "population on Ray") -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("run", "stage", "step", "node", "time left"):
        table.add_column(col, justify="right" if col in ("step", "time left") else "left")
    for name in names:
        info = runs.get(name)
        if info is None:
            table.add_row(name, done.get(name, "queued"), "", "", "")
        else:
            table.add_row(name, done.get(name, info.get("stage", "")),
                          f"{info.get('step', 0)}/{info.get('total', '?')}", info.get("node", ""),
                          "" if name in done else _eta(info))
    return table


@contextmanager
def population_options(executor: str, ray_address: str | None, cpus_per_run: float | None,
                       gpus_per_run: float | None, memory_per_run: str | None, names: list[str],
                       quiet: bool) -> Iterator[tuple[RayOptions | None, dict[str, str]]]:
    """(RayOptions or None for the local executor, a dict the caller fills with each finished
    run's state); with Ray and not quiet, a live table of the runs while inside."""
    check_executor(executor)
    if executor == "local":
        if any(v is not None for v in (ray_address, cpus_per_run, gpus_per_run, memory_per_run)):
            raise NasflowError(RAY_ONLY)
        yield None, {}
        return
    done: dict[str, str] = {}

    def restarted(name: str, step: int, why: str) -> None:
        console.print(f"{name}: [yellow]restarts from its checkpoint at step {step}[/] ({why})", highlight=False)

    options = RayOptions(address=ray_address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                         memory_per_run=parse_memory(memory_per_run) if memory_per_run is not None else None,
                         on_restart=restarted)
    if quiet:
        yield options, done
        return
    with live_runs(names, f"population on Ray: {len(names)} runs", done) as progress:
        options.progress = progress
        yield options, done


@contextmanager
def live_runs(names: list[str], title: str, done: dict[str, str]) -> Iterator[Callable[[dict[str, dict[str, Any]]], None]]:
    """A live table of the runs while inside; yields the callback that redraws it from the runs'
    posted states (`done` holds the finished runs' states, filled by the caller)."""
    with Live(runs_table({}, names, done, title), console=console, refresh_per_second=2, transient=True) as live:
        yield lambda runs: live.update(runs_table(runs, names, done, title))
