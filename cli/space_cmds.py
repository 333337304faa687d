"""`nasflow validate` and `nasflow cost`: check a space and count what it costs.

Neither imports torch (op specs are pure Python: nasflow.ops.registry); `cost` without
`--size` reads the task's size from its torch-free facts (nasflow.space.task_facts), and
imports the task (torch) only for a task that declares none."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from nasflow.errors import NasflowError
from nasflow.search.decision_costs import architecture_range
from nasflow.space.cost import ValueCosts, graph_cost, input_size_for_output, parse_size, value_costs
from nasflow.space.load import load_graph
from nasflow.space.task_facts import declared_cost_size

from .app import app, console, parse_sets

SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a space param, or fix a value decision: --set channels=18")]


@app.command()
def validate(
    space: Annotated[Path, typer.Argument(
        help="A space file (YAML), a model directory or a built-in space's name (nasflow spaces).")],
    set_: SetOpt = None,
) -> None:
    """Check a space file: schema, names, inputs, cycles, channels. Prints a summary."""
    graph = load_graph(space, parse_sets(set_))
    alphas = [d for d in graph.decisions.values() if d.kind == "alpha"]
    betas = [d for d in graph.decisions.values() if d.kind == "beta"]
    values = list(graph.value_decisions.values())
    kind = "architecture (no choices)" if graph.is_derived else "search space"
    console.print(f"[green]ok[/] {graph.space.name}: {kind}, {len(graph.nodes)} nodes, "
                  f"{len(alphas)} alpha decision(s), {len(betas)} beta decision(s)"
                  + (f", {len(values)} value decision(s)" if values else ""))
    for d in graph.decisions.values():
        options = f"values {', '.join(d.options)}" if d.kind == "value" else f"{len(d.options)} options"
        console.print(f"  {d.kind} [bold]{d.label}[/]: {options}, "
                      f"{len(d.nodes)} node(s)" + (f", top-{d.topk}" if d.kind == "beta" else ""))


@app.command()
def cost(
    space: Annotated[Path, typer.Argument(
        help="A space file, architecture file, model directory or built-in name (nasflow spaces).")],
    size: Annotated[Optional[str], typer.Option(
        help="Output size WIDTHxHEIGHT; the input is this over the scale (default: the task's, SR: 1280x720).")] = None,
    scale: Annotated[Optional[int], typer.Option(help="Shorthand for --set scale=S.")] = None,
    set_: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    per_node: Annotated[bool, typer.Option("--nodes/--totals", help="Show every node, or totals only.")] = True,
    latency_table: Annotated[Optional[Path], typer.Option(
        help="Also show predicted latency from this table (nasflow profile SPACE -o FILE).")] = None,
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
        if size is not None:
            hw = parse_size(size)
        else:  # the task's own size, declared torch-free (nasflow.space.task_facts)
            hw = declared_cost_size(graph.space)
            if hw is None:  # a task without facts: ask its class, which imports torch
                from nasflow.tasks.contract import default_cost_size

                hw = default_cost_size(graph.space)
        report = graph_cost(graph, input_size_for_output(graph, hw))
    except ValueError as exc:
        raise NasflowError(str(exc)) from None
    latency, total_ms, note = _latency(latency_table, graph, report.output_size)
    values = value_costs(graph, report) if graph.value_decisions else None
    # a search space: what one architecture of it costs at least and at most
    span = architecture_range(graph, report.input_size) if graph.decisions else None
    if as_json:
        data = {"space": graph.space.name, **report.to_json()}
        if values is not None:
            data["values"] = values.to_json()
        if span is not None:
            data["architectures"] = span
        if latency is not None:
            data["latency"] = {"table": str(latency_table), "predicted_ms": total_ms, "note": note,
                               "rows_ms": [latency.get((r.node, r.op)) for r in report.rows]}
        console.print_json(json.dumps(data))
        return
    h, w = report.input_size
    table = Table(title=f"{graph.space.name}: cost on a {w}x{h} input "
                  f"({report.output_size[1]}x{report.output_size[0]} output)")
    cols = ("node", "kind", "op", "params", "Multi-Adds") + (("ms",) if latency is not None else ())
    for col in cols:
        table.add_column(col, justify="right" if col in ("params", "Multi-Adds", "ms") else "left")
    if latency is not None:
        table.caption = note
    if per_node:
        for r in report.rows:
            ms = latency.get((r.node, r.op)) if latency is not None else None
            if r.op or ms:
                table.add_row(r.node, r.kind, r.op, f"{r.params:,}", _g(r.madds),
                              *([f"{ms:.2f}" if ms is not None else ""] if latency is not None else []))
        table.add_section()
    total = [f"{total_ms:.1f}" if total_ms is not None else "per candidate"] if latency is not None else []
    total_name = "total (largest values)" if values is not None else "total"
    if span is not None:
        total_name = "supernet " + total_name
    table.add_row(total_name, "", "", f"{report.params:,}", _g(report.madds), *total, style="bold")
    if span is not None:
        blank = [""] if latency is not None else []
        for end, cost in span.items():
            table.add_row(f"{end} architecture", "", "", f"{cost['params']:,}", _g(cost["madds"]), *blank)
        note = "cheapest, dearest: one architecture of the space, each metric's own extreme"
        table.caption = f"{table.caption}; {note}" if table.caption else note
    console.print(table)
    if values is not None:
        console.print(_values_table(values, graph.space.name))


def _values_table(values: ValueCosts, name: str) -> Table:
    """The value decisions' range and each value's cost (nasflow.space.cost.value_costs)."""
    table = Table(title=f"{name}: value decisions (each value with the others at their largest)",
                  caption="a fixed choice: nasflow cost SPACE --set NAME=VALUE")
    for col in ("decision", "value", "params", "Multi-Adds"):
        table.add_column(col, justify="left" if col == "decision" else "right")
    for label, per in values.per_value.items():
        for v, (p, m) in per.items():
            table.add_row(label, str(v), f"{p:,}", _g(m))
        table.add_section()
    table.add_row("smallest values", "", f"{values.smallest[0]:,}", _g(values.smallest[1]), style="bold")
    table.add_row("largest values", "", f"{values.largest[0]:,}", _g(values.largest[1]), style="bold")
    return table


def _latency(path: Path | None, graph, output_size: tuple[int, int]):
    """(row ms, total ms or None for a supernet, caption) from a latency table, or Nones."""
    if path is None:
        return None, None, ""
    from nasflow.search.latency_table import load_table, row_latencies

    table = load_table(path)
    rows = row_latencies(table, graph)
    total = table.predict(graph)[0] if graph.is_derived else None
    m = table.machine
    th, tw = table.output_size
    note = (f"ms: predicted from {path.name}, measured on {m.kind} '{m.name}' ({m.threads} thread(s), "
            f"{m.backend} {m.dtype}) at a {tw}x{th} output")
    if tuple(output_size) != (th, tw):
        note += f" (the table's size; latency is not rescaled to {output_size[1]}x{output_size[0]})"
    return rows, total, note


def _g(madds: int) -> str:
    return f"{madds / 1e9:.3f}G" if madds >= 1e6 else f"{madds:,}"  # small: per-sample costs


@app.command("ops")
def list_ops(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The ops a space can name (built-in and from installed packages), with their arguments
    and defaults."""
    from nasflow.ops.registry import OPS, load_op_plugins

    load_op_plugins()  # ops of installed packages too (the SR instance's esa)
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


@app.command("spaces")
def list_spaces(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The spaces and architectures shipped with nasflow, by name.

    Any command that takes a space file takes one of these names too, from any folder:
    nasflow search dlsr, nasflow train dlsr/dlsr-s, nasflow cost darts/darts_v2."""
    from nasflow.space.builtin import describe_builtin

    found = describe_builtin()
    if as_json:
        print(json.dumps({s.name: {"file": str(s.path), "description": s.description} for s in found}, indent=2))
        return
    table = Table(title="built-in spaces", caption="a name works wherever a space file does: nasflow validate dlsr")
    for col in ("name", "description"):
        table.add_column(col)
    for s in found:
        table.add_row(s.name, s.description)
    console.print(table)
