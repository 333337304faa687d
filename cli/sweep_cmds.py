"""`nasflow sweep`: a thin shell over nasflow.search.sweep (one search per gamma, for a Pareto front)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nasflow.errors import NasflowError
from nasflow.runs import distributed
from nasflow.search.config import SearchConfig
from nasflow.search.multiseed import SeedOutcome
from nasflow.search.report import build_report
from nasflow.search.sweep import budget_values, gamma_values, parse_values, run_sweep
from nasflow.search.run_dir import RunDir
from nasflow.space.load import load_space
from nasflow.tasks.presets import apply_preset, exclusive_options, preset_section

from .app import app, console, parse_sets
from .population_failure import population_failure
from .population_view import CPUS_HELP, EXECUTOR_HELP, GPUS_HELP, MEMORY_HELP, RAY_ADDRESS_HELP, population_options
from .report_cmds import report_table
from .search_cmds import parse_options, search_reporter


@app.command()
def sweep(
    space: Annotated[Path, typer.Argument(help="The space file to search, or a built-in space's name: dlsr, darts "
                                                "... (nasflow spaces).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The sweep's folder: OUT/gamma-G or OUT/budget-... per value.")],
    gamma: Annotated[Optional[str], typer.Option(help="The regularizer weights, one search each: 0,0.1,0.2,0.5.")] = None,
    budget: Annotated[Optional[str], typer.Option(
        help="Budgets, one search each: params=100k,params=300k or latency=20ms,latency=40ms (with --latency-table).")] = None,
    latency_table: Annotated[Optional[Path], typer.Option(help="nasflow profile's table, for latency budgets.")] = None,
    parallel: Annotated[Optional[int], typer.Option(
        help="Searches at a time (default: one per GPU, else one per 8 CPU cores).")] = None,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help=RAY_ADDRESS_HELP)] = None,
    cpus_per_run: Annotated[Optional[float], typer.Option(help=CPUS_HELP)] = None,
    gpus_per_run: Annotated[Optional[float], typer.Option(help=GPUS_HELP)] = None,
    memory_per_run: Annotated[Optional[str], typer.Option(help=MEMORY_HELP)] = None,
    preset: Annotated[Optional[str], typer.Option(help="The task's named settings (default: its quick one).")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="darts, milenas, or a registered strategy.")] = None,
    regularizer: Annotated[Optional[str], typer.Option(help="params, madds, ... (default params).")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Steps in all, warm-up included.")] = None,
    warmup: Annotated[Optional[int], typer.Option(help="Steps that update only the weights.")] = None,
    batch: Annotated[Optional[int], typer.Option(help="Batch size.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of every search (default 0).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a space param: --set channels=18")] = None,
    task_opt: Annotated[Optional[list[str]], typer.Option("--task-opt", help="A task option: --task-opt patch=64")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, ...")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the sweep in --out where it stopped.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """One search per gamma (OUT/gamma-G) or per budget (OUT/budget-...), then a table of what
    each found. Retrain each OUT/*/derived/arch.yaml into OUT/*/retrained and `nasflow report
    OUT --pareto pareto.png` draws quality against params, Multi-Adds and latency."""
    if distributed.launched_by_torchrun():
        raise NasflowError("a sweep starts its own processes (--parallel); run it without torchrun")
    if (gamma is None) == (budget is None):
        raise NasflowError("give the values to sweep: --gamma 0,0.1,0.2,0.5 or --budget params=100k,params=300k (one of them)")
    values = gamma_values(parse_values(gamma)) if gamma is not None else budget_values(budget or "")
    if regularizer in ("none", "") and gamma is not None:
        raise NasflowError("a gamma sweep needs a cost regularizer: --regularizer params or madds")
    if resume:
        started = [out / v.name for v in values if (out / v.name / "config.json").is_file()]
        if not started:
            raise NasflowError(f"--resume: '{out}' holds no run of these values; start the sweep without --resume")
        config = RunDir.open(started[0]).config()
    else:
        given: dict[str, Any] = {
            "strategy": strategy, "steps": steps, "warmup": warmup, "batch_size": batch, "seed": seed,
            "device": device, "regularizer": regularizer, "space": str(space),
            "latency_table": str(latency_table) if latency_table is not None else None,
            "overrides": parse_sets(set_) if set_ else None,
            "task_options": parse_options(task_opt) if task_opt else None,
        }
        changes = {k: v for k, v in given.items() if v is not None}
        space_file = load_space(space)
        used, settings = preset_section(space_file.task, preset, "search")
        if used is not None:
            SearchConfig.check_preset(settings, used, space_file.task)  # an unknown key names its preset
            changes = apply_preset(settings, changes, space_file.params, exclusive_options(space_file.task))
        config = SearchConfig.build(changes)

    with population_options(executor, ray_address, cpus_per_run, gpus_per_run, memory_per_run,
                            [v.name for v in values], quiet) as (ray, finished):
        def done(o: SeedOutcome) -> None:
            state = f"[red]failed: {o.error}[/]" if o.error else "done" if o.finished else f"[yellow]stopped at {o.step}[/]"
            finished[o.run_dir.name] = state
            again = f", restarted from step {', '.join(map(str, o.restarts))}" if o.restarts else ""
            console.print(f"{values[o.index].label}: {state} ({o.run_dir}{again})", highlight=False)

        reporter = None if quiet or executor != "local" else (lambda _: search_reporter(config))
        results = run_sweep(config, out, values, resume=resume, parallel=parallel, reporter=reporter, on_done=done,
                            executor=executor, ray=ray)
    searched = [o.run_dir for _, o in results if o.error is None and o.step > 0]
    if searched:
        console.print(report_table(build_report(searched), f"{len(searched)} searches in {out}"))
    given = f"--gamma {gamma}" if gamma is not None else f"--budget {budget}"
    how = ("the same command (started runs continue, finished ones are kept)" if executor == "ray"
           else f"nasflow sweep {space} {given} --resume --out {out}")
    failed = [(v.label, o) for v, o in results if o.error]
    if failed:  # which finished, and (a full disk, a read-only folder) how to continue the rest
        started = executor == "ray" or any((out / v.name / "config.json").is_file() for v in values)
        raise NasflowError(population_failure("searches", len(values), failed,
                                              [v.label for v, o in results if o.finished],
                                              f"continue the rest with: {how}" if started else "run the same command again"))
    if any(not o.finished for _, o in results) or len(results) < len(values):
        console.print(f"[yellow]stopped[/]; continue with: {how}")
        raise typer.Exit(130)
