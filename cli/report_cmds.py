"""`nasflow report`: a thin shell over nasflow.search.report (genotypes, costs, the task's
metric's mean and 95% CI)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from nasflow.space.cost import parse_size
from nasflow.errors import NasflowError
from nasflow.search.report import RETRAINED, Report, build_report, expand_runs

from .app import app, console


def report_table(report: Report, title: str) -> Table:
    """One row per run; the metric's mean and confidence interval as the caption."""
    table = Table(title=title, caption=summary_line(report))
    numeric = ("seed", "step", "params", "Multi-Adds", report.metric)
    for col in ("seed", "run", "step", "genotype", "params", "Multi-Adds", report.metric):
        table.add_column(col, justify="right" if col in numeric else "left", overflow="fold")
    for r in report.runs:
        value = f"{r.value:.3f}" if r.value is not None else "-"
        if r.note and r.model is not None:  # a warning about the model (no model: the caption says how)
            value += f" [yellow]({r.note})[/]"
        step = str(r.step) + (f" (restarted from {', '.join(map(str, r.restarts))})" if r.restarts else "")
        table.add_row(str(r.seed), str(r.run), step, str(r.genotype), f"{r.params:,}",
                      f"{r.madds / 1e9:.3f}G", value)
    return table


def summary_line(report: Report) -> str:
    ci = report.summary
    with_metric = sum(r.value is not None for r in report.runs)
    if ci is None:
        return (f"{report.metric}: {with_metric} retrained run(s); a confidence interval needs 2 or more "
                f"(retrain RUN/derived/arch.yaml into RUN/{RETRAINED}, or pass --models)")
    return (f"{report.metric} over {ci.n} runs: {ci.mean:.3f} ± {ci.half_width:.3f} "
            f"({ci.confidence:.0%} CI [{ci.low:.3f}, {ci.high:.3f}], Student t={ci.t:.4f}, df={ci.n - 1}; "
            f"std {ci.std:.3f})")


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(
        help="Search run directories (a --seeds directory stands for all its seed-N runs).")],
    models: Annotated[Optional[list[Path]], typer.Option("--models", "-m",
        help=f"Retrained model (model dir or train run dir) of each run, in the runs' order; "
             f"default: RUN/{RETRAINED} where it exists.")] = None,
    metric: Annotated[Optional[str], typer.Option(
        help="Validation metric from the models' meta.json (default: the task's best_metric).")] = None,
    confidence: Annotated[float, typer.Option(help="Confidence level of the interval.")] = 0.95,
    size: Annotated[Optional[str], typer.Option(
        help="Output size WIDTHxHEIGHT Multi-Adds are counted for (default: the task's, SR: 1280x720).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    latency_table: Annotated[Optional[Path], typer.Option(help="With --pareto: a latency panel, each derived "
        "architecture's latency predicted by this table (default: the table each run searched with, if any).")] = None,
    pareto: Annotated[Optional[Path], typer.Option(
        help="Also draw the metric against params and Multi-Adds, the Pareto front marked, into this PNG "
             "(the paper's points too on the DLSR space; pip install 'nasflow\\[plot]').")] = None,
) -> None:
    """Per search run: seed, derived genotype, params and Multi-Adds, the retrained model's
    metric (SR: PSNR); then its mean with a confidence interval (Student t), as the DLSR
    paper's Table X."""
    try:
        hw = parse_size(size) if size is not None else None
    except ValueError as exc:
        raise NasflowError(f"--size: {exc}") from None
    result = build_report(expand_runs(runs), models, metric=metric, confidence=confidence, size=hw)
    if pareto is not None:
        drawn = _draw_pareto(result, pareto, latency_table)
        if not as_json:
            console.print(f"Pareto plot: [bold]{drawn}[/]", highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return
    console.print(report_table(result, f"{len(result.runs)} search run(s)"))


def _draw_pareto(result: Report, out: Path, latency_table: Path | None) -> Path:
    from nasflow.search.latency_table import load_table
    from nasflow.search.run_dir import RunDir
    from nasflow.spaces.dlsr.paper import reference_points
    from nasflow.tasks.contract import task_class_for
    from nasflow.viz.mpl import pyplot
    from nasflow.viz.pareto import write_pareto

    pyplot()  # the install hint first
    run = RunDir.open(result.runs[0].run)
    space, size = run.space(), result.runs[0].output_size  # the size the rows' Multi-Adds are for
    higher = task_class_for(space, run.config().task).metric(result.metric).higher_is_better
    table = load_table(latency_table) if latency_table is not None else None
    refs = reference_points(space, size, table) if result.metric == "psnr" else []
    return write_pareto(result, out, refs, size, higher, table)
