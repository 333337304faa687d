"""An architecture or a supernet drawn: `nasflow draw SPACE_OR_MODEL -o FILE.png`.

Nodes are boxes coloured by what they compute (convolution families, combine, input, the
rest), named by their node and op; edges follow the data and carry the channel count the
source sends; each block instance (a cell) is a shaded cluster. In a supernet the decisions
stand out: a choice node lists its candidate ops and a dense node its candidate inputs, in a
red frame with the decision's label.

Layout (networkx): the graph is cut into units, each block instance one unit and each run
of consecutive top-level nodes another; units stand side by side in topological order and
inside a unit a node's row is its longest path from the unit's start. With graphviz
installed (pygraphviz or pydot, and `dot`), its layered layout places the nodes of a space
without blocks (or any space, with --layout graphviz).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

from nasflow.errors import NasflowError
from nasflow.runs.durable import write_atomic
from nasflow.space.graph import Graph, GNode, build_graph
from nasflow.space.load import load_space
from nasflow.viz.mpl import figure, save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Fill colours by what a node computes (colour-blind friendly pairs from tab10's light tones).
FILL = {"input": "#d9d9d9", "conv": "#aec7e8", "sep_conv": "#98df8a", "dil_conv": "#c5b0d5",
        "combine": "#ffbb78", "choice": "#ffffff", "dense": "#ffffff", "other": "#f7e1a0"}
DECISION_EDGE = "#d62728"
_X_GAP, _Y_GAP = 1.9, 1.0  # inches between unit columns' slots and between rows


@dataclass
class Placed:
    """Where each node goes (x right, y down, in layout units) and the units' boxes."""

    pos: dict[str, tuple[float, float]]
    clusters: dict[str, list[str]]  # block instance -> its nodes
    engine: str  # "nasflow" | "graphviz"


def load_graph(source: str | Path) -> Graph:
    """A space file, a model directory (its arch.yaml) or a run directory (its space.yaml)."""
    return build_graph(load_space(source))  # a directory: its arch.yaml, else its space.yaml


def family(g: GNode) -> str:
    if g.kind in ("input", "choice", "dense", "combine"):
        return g.kind
    op = g.op or ""
    for name in ("sep_conv", "dil_conv", "conv"):
        if op.startswith(name):
            return name
    return "other"


def _unit(name: str) -> str:
    return name.split(".", 1)[0] if "." in name else ""


def units(graph: Graph) -> list[tuple[str, list[str]]]:
    """(cluster name or "", nodes) in topological order: block instances are their own unit,
    consecutive top-level nodes share one."""
    out: list[tuple[str, list[str]]] = []
    for name in graph.nodes:
        key = _unit(name)
        if out and out[-1][0] == key:
            out[-1][1].append(name)
        else:
            out.append((key, [name]))
    return out


def _own_layout(graph: Graph) -> Placed:
    pos: dict[str, tuple[float, float]] = {}
    clusters: dict[str, list[str]] = {}
    x0 = 0.0
    for key, names in units(graph):
        inside = set(names)
        depth: dict[str, int] = {}
        for n in names:  # topological order: inputs first
            preds = [p for p in graph.nodes[n].inputs if p in inside]
            depth[n] = 1 + max((depth[p] for p in preds), default=-1)
        rows: dict[int, list[str]] = {}
        for n in names:
            rows.setdefault(depth[n], []).append(n)
        width = max(len(r) for r in rows.values())
        for d, row in rows.items():
            for i, n in enumerate(row):
                pos[n] = (x0 + i + (width - len(row)) / 2, float(d))
        if key:
            clusters[key] = names
        x0 += width + 0.35
    return Placed(pos, clusters, "nasflow")


def _graphviz_layout(graph: Graph) -> Placed | None:
    """dot's layered layout when graphviz is installed; None otherwise."""
    dag = nx.DiGraph(graph.dag.subgraph(graph.nodes))
    for engine in (lambda: nx.nx_agraph.graphviz_layout(dag, prog="dot"),
                   lambda: nx.nx_pydot.graphviz_layout(dag, prog="dot")):
        try:
            with warnings.catch_warnings():  # pydot's own pyparsing deprecations, not ours to fix
                warnings.simplefilter("ignore", DeprecationWarning)
                raw = engine()
        except Exception:  # noqa: BLE001 - not installed, or dot missing: use nasflow's layout
            continue
        ys = sorted({round(y, 3) for _, y in raw.values()}, reverse=True)  # dot puts the start on top
        row = {y: i for i, y in enumerate(ys)}
        # dot's x in points, one default node slot (54 pt wide + 18 pt apart) per unit.
        x0 = min(x for x, _ in raw.values())
        pos = {n: ((x - x0) / 72.0, float(row[round(y, 3)])) for n, (x, y) in raw.items()}
        clusters: dict[str, list[str]] = {}
        for n in graph.nodes:
            if _unit(n):
                clusters.setdefault(_unit(n), []).append(n)
        return Placed(pos, clusters, "graphviz")
    return None


def layout(graph: Graph, engine: str = "auto") -> Placed:
    """engine: 'nasflow', 'graphviz' (dot), or 'auto': graphviz for a graph without block
    instances when installed, else nasflow's. Cells drawn side by side read better than
    dot's one long column for cell-based spaces such as DLSR (90 nodes: 4276 x 5538 px)."""
    if engine not in ("auto", "graphviz", "nasflow"):
        raise NasflowError(f"--layout '{engine}': use auto, graphviz or nasflow")
    if engine == "auto" and any("." in n for n in graph.nodes):
        engine = "nasflow"
    if engine != "nasflow":
        placed = _graphviz_layout(graph)
        if placed is not None:
            return placed
        if engine == "graphviz":
            raise NasflowError("--layout graphviz needs graphviz: install it (e.g. apt install graphviz) and "
                               "pip install pygraphviz (or pydot); or use --layout nasflow")
    return _own_layout(graph)


def node_text(g: GNode) -> str:
    short = g.name.rsplit(".", 1)[-1]
    if g.kind == "input":
        return f"{short}\ninput, {g.c_out} ch"
    if g.kind == "choice":
        ops = "\n".join(g.candidates)
        return f"{short}: choice [{g.label}]\n{ops}"
    if g.kind == "dense":
        names = [c.rsplit(".", 1)[-1] for c in g.candidates]
        ins = "\n".join(", ".join(names[i:i + 3]) for i in range(0, len(names), 3))  # 3 a line
        if g.label is None:  # a derived architecture: the inputs are kept, nothing is chosen
            return f"{short}: dense\n{ins}\n{g.merge} > {g.op or '-'}"
        return f"{short}: dense [{g.label}]\ntop {g.topk} of\n{ins}\n{g.merge} > {g.op or '-'}"
    if g.kind == "combine":
        return f"{short}\n{g.merge}" + (f" > {g.act}" if g.act else "")
    what = "" if g.op == short else f"\n{g.op}"  # `esa: {op: esa}` says it once
    return f"{short}{what}" + (f" > {g.act}" if g.act else "")


def _on_arc(p0: tuple[float, float], p1: tuple[float, float], rad: float, t: float, kx: float,
            ky: float) -> tuple[float, float]:
    """The point at `t` along matplotlib's arc3 curve from p0 to p1 (a quadratic Bezier whose
    control point is set off the chord by rad times its length, on screen: y points down)."""
    (a, b), (c, d) = (p0[0] * kx, -p0[1] * ky), (p1[0] * kx, -p1[1] * ky)
    cx, cy = (a + c) / 2 + rad * (d - b), (b + d) / 2 - rad * (c - a)
    x = (1 - t) ** 2 * a + 2 * (1 - t) * t * cx + t * t * c
    y = (1 - t) ** 2 * b + 2 * (1 - t) * t * cy + t * t * d
    return x / kx, -y / ky


def draw_figure(graph: Graph, engine: str = "auto", title: str | None = None) -> tuple[Figure, Placed]:
    placed = layout(graph, engine)
    pos = placed.pos
    max_x = max(x for x, _ in pos.values())
    max_y = max(y for _, y in pos.values())
    # A choice box lists its candidates: give its row more height.
    tall = max((len(g.candidates) for g in graph.nodes.values() if g.kind == "choice"), default=1)
    row_h = _Y_GAP * (1 + 0.11 * tall)
    fig = figure(figsize=(max(6.0, (max_x + 1) * _X_GAP * 0.62), max(3.0, (max_y + 1) * row_h * 0.62 + 0.8)),
                 layout="constrained")
    ax = fig.subplots()
    ax.set_xlim(-0.8, max_x + 0.8)
    ax.set_ylim(max_y + 0.7, -0.7)  # the input at the top
    ax.axis("off")
    for i, (key, names) in enumerate(placed.clusters.items()):
        xs = [pos[n][0] for n in names]
        ys = [pos[n][1] for n in names]
        from matplotlib.patches import FancyBboxPatch

        ax.add_patch(FancyBboxPatch((min(xs) - 0.45, min(ys) - 0.45), max(xs) - min(xs) + 0.9,
                                    max(ys) - min(ys) + 0.9, boxstyle="round,pad=0.02",
                                    facecolor="#f0f0f0" if i % 2 == 0 else "#e6eef7", edgecolor="0.6",
                                    linewidth=0.8, zorder=0))
        ax.text(min(xs) - 0.4, min(ys) - 0.5, key, fontsize=8, fontweight="bold", va="bottom", ha="left",
                color="0.3", zorder=1)
    boxes = {}
    for name, g in graph.nodes.items():
        x, y = pos[name]
        decision = g.kind in ("choice", "dense") and g.label is not None
        boxes[name] = ax.text(
            x, y, node_text(g), ha="center", va="center", fontsize=6.5, zorder=3,
            fontweight="bold" if decision else "normal",
            bbox={"boxstyle": "round,pad=0.3", "facecolor": FILL[family(g)],
                  "edgecolor": DECISION_EDGE if decision else "0.35", "linewidth": 1.8 if decision else 0.7})
    labelled: set[str] = set()  # sources whose long edges already carry their channel count
    fig_w, fig_h = fig.get_size_inches()
    # Data units -> inches on each axis (y grows downwards on screen), to follow the arcs.
    kx, ky = fig_w / (max_x + 1.6), fig_h / (max_y + 1.4)
    for name, g in graph.nodes.items():
        for src in dict.fromkeys(g.inputs):
            (x0, y0), (x1, y1) = pos[src], pos[name]
            far = abs(y1 - y0) > 1.01 or (abs(x1 - x0) > 1.5)
            rad = 0.25 if far else 0.0
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=2,
                        arrowprops={"arrowstyle": "-|>", "color": "0.35", "linewidth": 0.7, "shrinkA": 2,
                                    "shrinkB": 2, "patchA": boxes[src], "patchB": boxes[name],
                                    "connectionstyle": f"arc3,rad={rad}"})
            # The channel count the edge carries: midway on a short edge; long ones (they fan out
            # from one source) get it once, a fifth of the way along the first of them.
            if far and src in labelled:
                continue
            labelled.add(src)
            ax.text(*_on_arc((x0, y0), (x1, y1), rad, 0.2 if far else 0.5, kx, ky), str(graph.nodes[src].c_out),
                    fontsize=5.5, color="#1f4e79", ha="center", va="center", zorder=4,
                    bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    kind = "supernet" if graph.decisions else "architecture"
    n_dec = f", {len(graph.decisions)} decisions in red frames" if graph.decisions else ""
    ax.set_title(title or f"{graph.space.name}: {kind}, {len(graph.nodes)} nodes{n_dec}; "
                          f"edge numbers: channels", fontsize=10)
    return fig, placed


def draw(source: str | Path, out: str | Path, engine: str = "auto") -> tuple[Path, Placed, Graph]:
    """Draw a space file, model directory or run directory into `out` (.png or .svg)."""
    out = Path(out)
    if out.suffix.lower() not in (".png", ".svg"):
        raise NasflowError(f"-o '{out}': give a .png or .svg file name")
    graph = load_graph(source)
    fig, placed = draw_figure(graph, engine)
    if out.suffix.lower() == ".svg":
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, lambda tmp: fig.savefig(tmp, format="svg"))  # a full disk: named, nothing partial
        return out, placed, graph
    return save(fig, out, svg=False)[0], placed, graph
