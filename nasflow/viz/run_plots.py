"""The figures of a run: `nasflow plot RUN` writes them into RUN/plots/ (PNG and SVG).

Search run:
    alpha.png     per choice label, its softmax(alpha) over steps, one line per candidate op
    beta.png      per dense node, its softmax(beta) over steps, one line per candidate input
                  (a strategy whose relaxation weighs otherwise: its function, sigmoid(alpha))
    losses.png    train / valid (and arch) losses, the task's loss terms, the regularizer term
    genotype.png  the genotype's pick per decision over steps, where the argmax changed
Training run:
    losses.png    train loss and the learning rate;  valid.png: the validation metrics

Each builder returns a matplotlib Figure whose lines are exactly the run's series (the
tests read them back); plot_run saves them. The warm-up's end is marked on every step axis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasflow.errors import RunError
from nasflow.search.report import expand_runs
from nasflow.viz.mpl import LINESTYLES, colors, figure, pyplot, save
from nasflow.viz.run_data import DecisionHistory, RunHistory, Series, run_history

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOTS = "plots"  # RUN/plots/
_COLS = 3  # subplots per row


@dataclass
class PlotResult:
    run: Path
    files: list[Path]
    history: RunHistory


def _grid(n: int, width: float = 4.6, height: float = 3.0) -> tuple[Figure, list[Axes]]:
    cols = min(_COLS, max(n, 1))
    rows = math.ceil(max(n, 1) / cols)
    fig = figure(figsize=(width * cols, height * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    flat = [a for row in axes for a in row]
    for extra in flat[n:]:
        extra.set_visible(False)
    return fig, flat[:n]


def _mark_warmup(ax: Axes, history: RunHistory) -> None:
    if 0 < history.warmup < history.total_steps:
        ax.axvline(history.warmup, color="0.55", linestyle=":", linewidth=1)


def _title(fig: Figure, history: RunHistory, what: str) -> None:
    notes = [] if history.finished else [f"in progress: step {history.last_step} of {history.total_steps}"]
    if 0 < history.warmup < history.total_steps:
        notes.append(f"dotted line: warm-up ends (step {history.warmup})")
    fig.suptitle(f"{history.path.name}: {what}" + ("\n" + "; ".join(notes) if notes else ""), fontsize=10)


def _marker(n_points: int) -> str | None:
    return "o" if n_points <= 12 else None  # few records: show where they are


# --- decision weights ------------------------------------------------------------------------
def _decision_axes(ax: Axes, d: DecisionHistory, legend: bool, weights_name: str) -> None:
    palette = colors(len(d.options))
    for j, option in enumerate(d.options):
        s = d.option_series(j)
        ax.plot(s.steps, s.values, label=option, color=palette[j], linestyle=LINESTYLES[j % 4],
                marker=_marker(len(s.steps)), markersize=3, linewidth=1.4)
    shared = f", shared by {len(d.nodes)} nodes" if len(d.nodes) > 1 else ""
    keeps = f", top {len(d.picks[-1])} kept" if d.kind == "beta" and d.picks else ""
    ax.set_title(f"{d.label}{shared}{keeps}", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{weights_name}({d.kind})")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)


def decisions_figure(history: RunHistory, kind: str) -> Figure | None:
    """softmax(alpha) (kind 'alpha'), softmax(beta) ('beta') or over values ('value') per
    decision (the run's relaxation's function in place of softmax); None if none."""
    decisions = [d for d in history.decisions.values() if d.kind == kind and d.steps]
    if not decisions:
        return None
    same = len({d.options for d in decisions}) == 1  # one legend serves every panel
    fig, axes = _grid(len(decisions), width=5.2 if not same else 4.6)
    for ax, d in zip(axes, decisions):
        _decision_axes(ax, d, legend=not same, weights_name=history.weights_name)
        _mark_warmup(ax, history)
    if same:
        handles, labels = axes[0].get_legend_handles_labels()
        per_row = max(1, int(fig.get_figwidth() / 1.7))  # each entry ~1.7 in wide
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), per_row), fontsize=8,
                   frameon=False)
    what = {"alpha": "candidate ops per choice", "beta": "candidate inputs per dense node",
            "value": "values per value decision"}.get(kind, kind)
    _title(fig, history, f"{history.weights_name}({kind}), {what}")
    return fig


# --- losses ---------------------------------------------------------------------------------
def _series_axes(ax: Axes, series: dict[str, Series], title: str, log: bool) -> None:
    palette = colors(len(series))
    for i, (name, s) in enumerate(series.items()):
        ax.plot(s.steps, s.values, label=name, color=palette[i], linestyle=LINESTYLES[i % 4],
                marker=_marker(len(s.steps)), markersize=3, linewidth=1.4)
    if log and all(v > 0 for s in series.values() for v in s.values):
        ax.set_yscale("log")
        plt = pyplot()
        plain = plt.FuncFormatter(lambda v, _: f"{v:g}")  # 20, not 2x10^1
        ax.yaxis.set_major_formatter(plain)
        lo, hi = ax.get_ylim()
        # Over a short range, label the minor ticks at 2, 3 and 5 times a power of ten.
        some = plt.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "235" else "")
        ax.yaxis.set_minor_formatter(some if hi / lo <= 30 else plt.NullFormatter())
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)


def _repeats(terms: dict[str, Series], losses: dict[str, Series]) -> bool:
    """True when every term is one of the losses again (a loss with a single term)."""
    known = [s.values for s in losses.values()]
    return all(s.values in known for s in terms.values())


def losses_figure(history: RunHistory) -> Figure | None:
    panels: list[tuple[dict[str, Series], str, bool]] = []
    if history.losses:
        panels.append((history.losses, "losses (mean over each logging interval)", True))
    if history.terms and not _repeats(history.terms, history.losses):
        panels.append((history.terms, "the task's loss terms", True))
    penalty = {k: v for k, v in history.reg.items() if k == "reg/penalty"} or history.reg
    if penalty:
        weight = f", weighted by gamma={history.gamma:g}" if history.gamma is not None else ""
        panels.append((penalty, f"regularizer term ({history.regularizer}{weight})", False))
    if history.lr.steps:
        panels.append(({"lr": history.lr}, "learning rate", True))
    if not panels:
        return None
    fig, axes = _grid(len(panels))
    for ax, (series, title, log) in zip(axes, panels):
        _series_axes(ax, series, title, log)
        _mark_warmup(ax, history)
    _title(fig, history, "losses")
    return fig


def valid_figure(history: RunHistory) -> Figure | None:
    if not history.valid:
        return None
    fig, axes = _grid(len(history.valid))
    for ax, (name, s) in zip(axes, history.valid.items()):
        _series_axes(ax, {name: s}, f"validation {name}", False)
    _title(fig, history, "validation")
    return fig


# --- genotype history -------------------------------------------------------------------------
def _segments(d: DecisionHistory) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start step, end step, pick) runs of an unchanged pick over the logged steps."""
    out: list[tuple[int, int, tuple[str, ...]]] = []
    for i, (step, pick) in enumerate(zip(d.steps, d.picks)):
        end = d.steps[i + 1] if i + 1 < len(d.steps) else step
        if out and out[-1][2] == pick:
            out[-1] = (out[-1][0], end, pick)
        else:
            out.append((step, end, pick))
    return out


def _pick_text(pick: tuple[str, ...]) -> str:
    return "+".join(pick) if pick else "-"


def genotype_figure(history: RunHistory) -> Figure | None:
    """One row per decision: bars coloured by the pick (alpha: the op's colour in alpha.png),
    the pick written where it fits, a tick where it changed, the final pick at the right."""
    decisions = [d for d in history.decisions.values() if d.steps]
    if not decisions:
        return None
    fig = figure(figsize=(10.5, 0.55 * len(decisions) + 1.6), layout="constrained")
    ax = fig.subplots()
    span = max(history.last_step, 1)
    for row, d in enumerate(decisions):
        y = len(decisions) - 1 - row
        if d.kind in ("alpha", "value"):
            palette = colors(len(d.options))
            colour_of = {(o,): palette[j] for j, o in enumerate(d.options)}
        else:
            kinds = list(dict.fromkeys(d.picks))
            pal = colors(len(kinds))
            colour_of = {k: pal[i] for i, k in enumerate(kinds)}
        for start, end, pick in _segments(d):
            width = max(end - start, span * 0.004)
            ax.broken_barh([(start, width)], (y - 0.35, 0.7), facecolors=colour_of.get(pick, "0.7"),
                           edgecolor="white", linewidth=0.5)
            text = _pick_text(pick)
            if width >= span * 0.012 * max(len(text), 4):  # only where the text fits inside
                ax.text(start + width / 2, y, text, ha="center", va="center", fontsize=7, color="black",
                        bbox={"facecolor": "white", "alpha": 0.65, "pad": 1, "edgecolor": "none"})
        ax.text(1.01, y, _pick_text(d.picks[-1]), transform=ax.get_yaxis_transform(), va="center",
                fontsize=8)
    for c in history.changes:
        y = len(decisions) - 1 - [d.label for d in decisions].index(c.label)
        ax.plot([c.step, c.step], [y - 0.42, y + 0.42], color="black", linewidth=1)
    ax.set_yticks(range(len(decisions)), [d.label for d in reversed(decisions)], fontsize=9)
    ax.set_xlim(0, span)
    ax.set_xlabel("step")
    _mark_warmup(ax, history)
    ax.set_title(f"picks over steps ({len(history.changes)} changes, black ticks); final pick at the right",
                 fontsize=10)
    _title(fig, history, "genotype")
    return fig


# --- a run, several runs -----------------------------------------------------------------------
def figures(history: RunHistory) -> dict[str, Figure]:
    """{file stem: figure} of everything there is to draw for this run."""
    made: dict[str, Any] = {
        "alpha": decisions_figure(history, "alpha"), "beta": decisions_figure(history, "beta"),
        "values": decisions_figure(history, "value"),
        "losses": losses_figure(history), "genotype": genotype_figure(history), "valid": valid_figure(history),
    }
    return {k: v for k, v in made.items() if v is not None}


def plot_run(run: str | Path, out: str | Path | None = None, svg: bool = True) -> PlotResult:
    """Draw one run's figures into `out` (default RUN/plots/)."""
    history = run_history(run)
    folder = Path(out) if out is not None else Path(run) / PLOTS
    written: list[Path] = []
    for name, fig in figures(history).items():
        written += save(fig, folder / name, svg=svg)
    if not written:
        raise RunError(f"run '{run}' has no records to plot yet (its metrics.jsonl is empty); "
                       "plot it once it has logged a step")
    return PlotResult(Path(run), written, history)


def plot_runs(paths: list[str | Path], svg: bool = True) -> list[PlotResult]:
    """Each run's figures into its own plots/; a --seeds (or sweep) folder stands for its runs."""
    pyplot()  # fail with the install hint before reading anything
    return [plot_run(p, svg=svg) for p in expand_runs(list(paths))]
