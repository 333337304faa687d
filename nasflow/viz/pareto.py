"""Quality against cost for a set of searches: `nasflow report RUNS --pareto FILE.png`.

One panel per cost (params, Multi-Adds at the report's output size, and latency when a
latency table predicts it for every run: `--latency-table`, or the one each run searched
with), one point per run
whose retrained model records the metric, the Pareto front (no other point is at most as
costly and at least as good, one of them strictly) joined by a line and ringed; a task's
reference points (the paper's DLSR, DLSR-DIV, DLSR-S on the DLSR space) as stars.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nasflow.derive.genotype import derive_space
from nasflow.errors import NasflowError
from nasflow.search.latency_table import LatencyTable, load_table
from nasflow.search.report import Report
from nasflow.search.run_dir import RunDir
from nasflow.space.graph import build_graph
from nasflow.viz.mpl import colors, figure, save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COSTS = (("params", "parameters (K)", 1e3), ("madds", "Multi-Adds (G)", 1e9), ("latency", "latency (ms)", 1.0))


@dataclass(frozen=True)
class Point:
    name: str
    params: int
    madds: int
    quality: float
    latency: float | None = None  # ms, predicted by a latency table (nasflow profile)


def pareto_front(points: list[Point], cost: str, higher: bool = True) -> list[int]:
    """Indices of the points on the front for `cost` (lower better) and quality (higher better,
    or lower with higher=False), ordered by cost."""
    sign = 1 if higher else -1
    front = []
    for i, p in enumerate(points):
        c, v = getattr(p, cost), sign * p.quality
        dominated = any(getattr(q, cost) <= c and sign * q.quality >= v
                        and (getattr(q, cost) < c or sign * q.quality > v) for q in points)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (getattr(points[i], cost), -sign * points[i].quality))


def report_points(report: Report, table: LatencyTable | None = None) -> list[Point]:
    """A point per run with a recorded metric; its latency predicted by `table`, else by the
    latency table the run searched with (config latency_table), else none."""
    points = []
    for r in report.runs:
        if r.value is None:
            continue
        run = RunDir.open(r.run)
        runs_table = table
        if runs_table is None and run.config().latency_table is not None:
            runs_table = load_table(run.latency_table(run.config().latency_table))  # the run's copy
        latency = None
        if runs_table is not None:
            latency = runs_table.predict(build_graph(derive_space(run.space(), r.genotype)))[0]
        points.append(Point(r.run.name, r.params, r.madds, r.value, latency))
    return points


def pareto_figure(points: list[Point], references: list[Point], metric: str,
                  size: tuple[int, int], title: str = "", higher: bool = True) -> Figure:
    """`higher`: the task's declared direction of `metric` (nasflow.tasks.Metric)."""
    if not points:
        raise NasflowError(f"no run has a retrained model that records '{metric}': retrain each "
                           "RUN/derived/arch.yaml into RUN/retrained (or pass --models) before drawing the front")
    # Latency only when every run has one (a latency table predicted it).
    costs = [c for c in COSTS if c[0] != "latency" or all(p.latency is not None for p in points)]
    fig = figure(figsize=(5.5 * len(costs), 4.6), layout="constrained")
    axes = fig.subplots(1, len(costs))
    ref_color, run_color = colors(2)[1], colors(1)[0]
    for ax, (cost, label, unit) in zip(axes, costs):
        refs = [r for r in references if getattr(r, cost) is not None]
        xs = [getattr(p, cost) / unit for p in points]
        ys = [p.quality for p in points]
        ax.scatter(xs, ys, color=run_color, s=28, zorder=3, label="searched, retrained")
        front = pareto_front(points, cost, higher)
        ax.plot([xs[i] for i in front], [ys[i] for i in front], color=run_color, linewidth=1.2, zorder=2,
                label="Pareto front")
        ax.scatter([xs[i] for i in front], [ys[i] for i in front], s=110, facecolors="none",
                   edgecolors=run_color, linewidths=1.2, zorder=3)
        right = min(xs) + 0.7 * (max(xs) - min(xs))
        for p, x, y in zip(points, xs, ys):
            # Names of the rightmost points above-left (inside the panel, off a rising front),
            # the others below-right.
            ax.annotate(p.name, (x, y), textcoords="offset points", xytext=(-6, 5) if x > right else (5, -11),
                        ha="right" if x > right else "left", fontsize=7)
        if refs:
            rx = [getattr(r, cost) / unit for r in refs]
            ax.scatter(rx, [r.quality for r in refs], marker="*", s=140, color=ref_color, zorder=4,
                       label="paper (Set5 x2 PSNR)")
            for i, (r, x) in enumerate(zip(refs, rx)):
                # Above, then below: the paper's DLSR and DLSR-DIV stand almost on one spot.
                ax.annotate(r.name, (x, r.quality), textcoords="offset points", xytext=(6, 5 if i % 2 == 0 else -13),
                            fontsize=8, color=ref_color)
        ax.set_xlabel(f"{label}, {size[1]}x{size[0]} output" if cost == "madds" else label)
        ax.set_ylabel("PSNR (dB)" if metric == "psnr" else metric)
        ax.grid(alpha=0.3)
        ax.margins(x=0.12, y=0.12)
    axes[0].legend(fontsize=8, loc="lower right")
    shown = "PSNR" if metric == "psnr" else metric
    fig.suptitle(title or f"{shown} against cost: {len(points)} retrained searches", fontsize=10)
    return fig


def write_pareto(report: Report, out: str | Path, references: list[Point] | None = None,
                 size: tuple[int, int] = (720, 1280), higher: bool = True, table: LatencyTable | None = None) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise NasflowError(f"--pareto '{out}': give a .png file name")
    fig = pareto_figure(report_points(report, table), references or [], report.metric, size, higher=higher)
    return save(fig, out, svg=False)[0]
