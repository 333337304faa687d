"""`nasflow validate` and `nasflow cost`: check a space and count what it costs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from nasflow.space.cost import graph_cost, input_size_for_output, parse_size
from nasflow.errors import NasflowError
from nasflow.space.load import load_graph

from .app import app, console, parse_sets

SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a space param: --set channels=18")]


@app.command()
def validate(
    space: Annotated[Path, typer.Argument(help="A space file (YAML) or a model directory.")],
    set_: SetOpt = None,
) -> None:
    """Check a space file: schema, names, inputs, cycles, channels. Prints a summary."""
    graph = load_graph(space, parse_sets(set_))
    alphas = [d for d in graph.decisions.values() if d.kind == "alpha"]
    betas = [d for d in graph.decisions.values() if d.kind == "beta"]
    kind = "architecture (no choices)" if graph.is_derived else "search space"
    console.print(f"[green]ok[/] {graph.space.name}: {kind}, {len(graph.nodes)} nodes, "
                  f"{len(alphas)} alpha decision(s), {len(betas)} beta decision(s)")
    for d in graph.decisions.values():
        console.print(f"  {d.kind} [bold]{d.label}[/]: {len(d.options)} options, "
                      f"{len(d.nodes)} node(s)" + (f", top-{d.topk}" if d.kind == "beta" else ""))


@app.command()
def cost(
    space: Annotated[Path, typer.Argument(help="A space file, architecture file or model directory.")],
    size: Annotated[str, typer.Option(help="Output size WIDTHxHEIGHT; the input is this over the scale.")] = "1280x720",
    scale: Annotated[Optional[int], typer.Option(help="Shorthand for --set scale=S.")] = None,
    set_: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    per_node: Annotated[bool, typer.Option("--nodes/--totals", help="Show every node, or totals only.")] = True,
) -> None:
    """Parameters and Multi-Adds per node (per candidate for a supernet), and totals.

    Multi-Adds count one multiply-add per conv weight per output pixel and one add per
    output value of a conv with a bias; activations, pooling and element-wise ops are free.
    """
    overrides = parse_sets(set_)
    if scale is not None:
        overrides["scale"] = scale
    graph = load_graph(space, overrides)
    try:
        report = graph_cost(graph, input_size_for_output(graph, parse_size(size)))
    except ValueError as exc:
        raise NasflowError(str(exc)) from None
    if as_json:
        console.print_json(json.dumps({"space": graph.space.name, **report.to_json()}))
        return
    h, w = report.input_size
    table = Table(title=f"{graph.space.name}: cost on a {w}x{h} input "
                  f"({report.output_size[1]}x{report.output_size[0]} output)")
    for col in ("node", "kind", "op", "params", "Multi-Adds"):
        table.add_column(col, justify="right" if col in ("params", "Multi-Adds") else "left")
    if per_node:
        for r in report.rows:
            if r.op:
                table.add_row(r.node, r.kind, r.op, f"{r.params:,}", _g(r.madds))
        table.add_section()
    table.add_row("total", "", "", f"{report.params:,}", _g(report.madds), style="bold")
    console.print(table)


def _g(madds: int) -> str:
    return f"{madds / 1e9:.3f}G"


@app.command("ops")
def list_ops(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The registered ops a space can name, with their arguments and defaults."""
    from nasflow.ops.registry import OPS

    rows = [(name, OPS.get(name)) for name in OPS.names()]
    if as_json:
        print(json.dumps({name: {"args": spec.args, "doc": spec.doc} for name, spec in rows}, indent=2))
        return
    table = Table(title="ops", caption="register your own with @nasflow.ops.registry.register_op; see docs/space-language.md")
    for col in ("op", "args", "what it computes"):
        table.add_column(col)
    for name, spec in rows:
        table.add_row(name, ", ".join(f"{k}={v}" for k, v in spec.args.items()), spec.doc)
    console.print(table)
