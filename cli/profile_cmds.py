"""`nasflow profile`: a latency table of a space measured on this machine, and its check
(thin shell over nasflow.hardware; torch is imported when the command runs)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nasflow.errors import NasflowError

from .app import app, console, parse_sets


def _progress(disable: bool = False) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("[dim]{task.fields[what]}"), console=console,
                    disable=disable or not console.is_terminal)  # no bars into a pipe or file


@app.command()
def profile(
    space: Annotated[Path, typer.Argument(help="A space file (or a derived architecture) to measure, or a built-in "
                                                "name: dlsr, dlsr/dlsr-s ... (nasflow spaces).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the table here (JSON).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    threads: Annotated[Optional[int], typer.Option(help="Intra-op threads (default: torch's).")] = None,
    size: Annotated[Optional[str], typer.Option(
        help="Deployment output size WIDTHxHEIGHT (as nasflow cost); the input is this over the scale "
             "(default: the task's cost size, SR: 1280x720).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a space param: --set channels=18")] = None,
    dtype: Annotated[str, typer.Option(help="fp32 or bf16 (eager only).")] = "fp32",
    backend: Annotated[str, typer.Option(help="eager, onnx or openvino: the inference runtime to time.")] = "eager",
    clock: Annotated[str, typer.Option(help=(
        "wall: the latency a user sees; cpu: the process's CPU time, for a machine shared with other "
        "jobs, with --threads 1 (with more threads it adds theirs)."))] = "wall",
    warmup: Annotated[int, typer.Option(help="Untimed runs before timing each node.")] = 2,
    reps: Annotated[int, typer.Option(help="Timed runs per node (median and spread).")] = 7,
    check: Annotated[bool, typer.Option("--check", help=(
        "Then time N random derived architectures end to end and compare with the table's "
        "prediction (Spearman rank correlation, mean relative error)."))] = False,
    n: Annotated[int, typer.Option("-n", help="Architectures for --check.")] = 8,
    check_reps: Annotated[int, typer.Option(help=(
        "Rounds of --check: each round times every architecture and every node once, interleaved."))] = 5,
    calibrate: Annotated[int, typer.Option(help=(
        "Derived architectures timed whole while profiling, for the table's per-node overhead "
        "(0: none)."))] = 2,
    table_file: Annotated[Optional[Path], typer.Option("--table", help=(
        "Check this existing table (with --check) instead of profiling again."))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    executor: Annotated[str, typer.Option(help=(
        "--check on local (this machine) or ray: the architectures split over the nodes of a Ray cluster, one "
        "task per node, each node the table's device model (pip install 'nasflow\\[ray]')."))] = "local",
    ray_address: Annotated[Optional[str], typer.Option(
        help="With --executor ray: a running cluster, auto or HOST:PORT (default: start a local Ray here).")] = None,
    cpus_per_run: Annotated[Optional[float], typer.Option(
        help="With --executor ray: CPUs each node's check task asks for (default: the table's threads).")] = None,
) -> None:
    """Measure every candidate of every decision, and every fixed node, at the deployment
    size on this machine (warm-up, repetitions, median and spread) and write a latency
    table for `nasflow search --regularizer latency --latency-table FILE` and `--budget`."""
    from nasflow.hardware.check import check_table
    from nasflow.runs.population_ray import RayOptions, check_executor
    from nasflow.hardware.profile import profile_space
    from nasflow.hardware.timing import Runner
    from nasflow.search.latency_table import load_table
    from nasflow.space.cost import input_size_for_output, parse_size
    from nasflow.space.load import load_graph
    from nasflow.tasks.contract import default_cost_size

    check_executor(executor)
    if executor != "local" and not check:
        raise NasflowError("--executor ray spreads --check over a cluster; profiling times this machine: add --check")
    if executor == "local" and (ray_address is not None or cpus_per_run is not None):
        raise NasflowError("--ray-address and --cpus-per-run need --executor ray")
    graph = load_graph(space, parse_sets(set_))
    runner = Runner(backend, device, dtype, clock)
    if table_file is not None:  # the table has its own size
        if not check:
            raise NasflowError("--table gives a table to --check; add --check, or drop --table to profile")
        table = load_table(table_file)
        table.check_machine()
    else:
        try:
            input_size = input_size_for_output(graph, parse_size(size) if size else default_cost_size(graph.space))
        except ValueError as exc:
            raise NasflowError(str(exc)) from None
        from nasflow.compile.supernet import compile_graph
        from nasflow.deploy.input_size import check_input_size

        h, w = input_size  # refused before timing anything when the layers cannot take it
        check_input_size(compile_graph(graph), h, w, f"the input of --size {size} ({w} x {h})",
                         "profile a larger --size")
        with _progress(disable=as_json) as bar:
            task = bar.add_task("profiling", total=None, what="")
            table = profile_space(graph, input_size, runner, threads, warmup, reps,
                                  progress=lambda done, total, what: bar.update(task, completed=done,
                                                                                 total=total, what=what),
                                  calibrate=calibrate)
        if out is not None:
            table.save(out)
    result = None
    if check:
        with _progress(disable=as_json) as bar:
            task = bar.add_task("checking", total=None, what="")
            ray = RayOptions(address=ray_address, cpus_per_run=cpus_per_run) if executor == "ray" else None
            result = check_table(graph, table, n=n, threads=threads, warmup=warmup, reps=check_reps,
                                 executor=executor, ray=ray,
                                 progress=lambda done, total, what: bar.update(task, completed=done,
                                                                                total=total, what=what))
    if as_json:
        print(json.dumps({"table": table.model_dump(), **({"check": result.to_json()} if result else {})}, indent=1))
        return
    if table_file is None:
        console.print(latency_table_view(table))
        if out is not None:
            console.print(f"wrote [bold]{out}[/]")
    if result is not None:
        console.print(check_view(result, table))


def _machine(table) -> str:  # table: LatencyTable
    m = table.machine
    clock = ", CPU time" if m.clock == "cpu" else ""
    return f"{m.kind} '{m.name}', {m.threads} thread(s), {m.backend} {m.dtype}{clock}, torch {m.torch}"


def latency_table_view(table) -> Table:  # table: LatencyTable
    h, w = table.input_size
    oh, ow = table.output_size
    overhead = (f"; per-node overhead {table.node_overhead_ms:+.3f} ms (from {table.calibrated_on} whole "
                "architecture(s)), in every prediction" if table.calibrated_on else "")
    view = Table(title=f"{table.space}: latency on a {w}x{h} input ({ow}x{oh} output)",
                 caption=(f"{_machine(table)}; median of {table.reps} interleaved rounds, +- half the "
                          f"interquartile range{overhead}"))
    with_values = bool(table.values)  # a row per value combination of the nodes they size
    for col in ("node", "kind", "option", *(("values",) if with_values else ()), "ms", "+-"):
        # the values fold rather than end in "...": "channels=16,esa_f=4" is the row's key
        view.add_column(col, justify="right" if col in ("ms", "+-") else "left",
                        overflow="fold" if col == "values" else "ellipsis")
    shown: set[str] = set()
    for name, e in table.nodes.items():
        at = e.at_values.items() if e.value_deps else [("", e)]
        values = (lambda key: (key.replace(",", ", "),)) if with_values else (lambda key: ())  # noqa: E731
        for key, timings in at:
            if timings.timing is not None:
                view.add_row(name, e.kind, "", *values(key), f"{timings.timing.ms:.3f}",
                             f"{timings.timing.spread / 2:.3f}")
        if e.kind == "choice" and e.label in shown:  # a shared alpha: its first node stands for all
            continue
        shown.add(e.label or name)
        for key, timings in at:
            for option, t in timings.options.items():
                view.add_row(name, e.kind, option, *values(key), f"{t.ms:.3f}", f"{t.spread / 2:.3f}")
    view.add_section()
    view.add_row("fixed nodes" + (" (largest values)" if with_values else ""), "", "",
                 *(("",) if with_values else ()), f"{table.fixed_ms:.2f}", "", style="bold")
    return view


def check_view(result, table) -> Table:  # result: CheckResult
    one = len(result.rows) == 1  # a derived architecture against the table
    ranks = lambda rho: "" if one else f"Spearman {rho:.3f}, "  # noqa: E731
    view = Table(title="predicted vs measured, " + ("the architecture" if one else
                                                    f"{len(result.rows)} random derived architectures"),
                 caption=(f"{ranks(result.spearman)}mean relative error {100 * result.mean_relative_error:.1f}% "
                          "(whole networks and the table's nodes timed interleaved, medians); the table as "
                          f"written: {ranks(result.table_spearman)}error "
                          f"{100 * result.table_mean_relative_error:.1f}%, its nodes ran {result.drift:.2f}x "
                          f"its times now ({_machine(table)})"))
    for col in ("architecture", "predicted ms", "measured ms", "+-", "error", "table ms"):
        view.add_column(col, justify="left" if col == "architecture" else "right")
    for r in result.rows:
        view.add_row(r.genotype, f"{r.predicted_ms:.1f}", f"{r.measured_ms:.1f}", f"{r.spread_ms / 2:.1f}",
                     f"{100 * (r.predicted_ms - r.measured_ms) / r.measured_ms:+.1f}%", f"{r.table_ms:.1f}")
    return view
