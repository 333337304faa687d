"""Cost of a space or model: parameters and Multi-Adds, per node and per candidate.

Read from the op registry, so the table, the totals and the regularizers share one source.
Multi-Adds count one multiply-add per conv weight per output pixel and one add per output
value of a conv with a bias; activations, pooling, resizing and element-wise ops are free.
Table I of the DLSR paper (bias-free candidates) is exactly this, and the paper's Table II
totals for DLSR, DLSR-DIV and DLSR-S are within 2% of it (its counter also saw a few
element-wise ops).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

from nasflow.ops.registry import OPS
from nasflow.space.graph import GNode, Graph
from nasflow.space.kinds import checked_cost_ops, kind, op_hook_int
from nasflow.space.values import Assignment, at


@dataclass
class CostRow:
    node: str
    kind: str
    op: str  # the op (or candidate) this row counts; "" for parameter-free nodes
    params: int
    madds: int
    size: tuple[int, int]  # h x w the op reads


@dataclass
class CostReport:
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    rows: list[CostRow] = field(default_factory=list)

    # Totals: at the largest values of the value decisions, if any (rows may be Syms, whose
    # sum over many decisions is never formed: `at` gives the totals of any assignment).
    @property
    def params(self) -> int:
        return sum(int(r.params) for r in self.rows)

    @property
    def madds(self) -> int:
        return sum(int(r.madds) for r in self.rows)

    def at(self, assignment: Assignment) -> tuple[int, int]:
        """(params, Multi-Adds) of the architecture `assignment` picks (decisions it does not
        give at their largest values): each row's exact cost at those values."""
        return (sum(at(r.params, assignment) for r in self.rows), sum(at(r.madds, assignment) for r in self.rows))

    def to_json(self) -> dict[str, Any]:
        rows = [{**asdict(r), "params": int(r.params), "madds": int(r.madds)} for r in self.rows]
        return {"input_size": list(self.input_size), "output_size": list(self.output_size),
                "params": self.params, "madds": self.madds, "rows": rows}


@dataclass
class ValueCosts:
    """What value decisions cost: the totals at the decisions' smallest and largest values,
    and at each value of each decision (the others at their largest)."""

    smallest: tuple[int, int]
    largest: tuple[int, int]
    per_value: dict[str, dict[int, tuple[int, int]]]

    def to_json(self) -> dict[str, Any]:
        pair = lambda c: {"params": c[0], "madds": c[1]}  # noqa: E731
        return {"smallest": pair(self.smallest), "largest": pair(self.largest),
                "per_value": {k: {str(v): pair(c) for v, c in vs.items()} for k, vs in self.per_value.items()}}


def value_costs(graph: Graph, report: CostReport) -> ValueCosts:
    """The value decisions' costs from a report of `graph` (exact: each row's own table)."""
    decisions = graph.value_decisions
    low = {k: min(d.values) for k, d in decisions.items()}
    per_value = {k: {v: report.at({k: v}) for v in d.values} for k, d in decisions.items()}
    return ValueCosts(report.at(low), report.at({}), per_value)


def op_cost(op: str, c_in: int, c_out: int, args: dict[str, Any], h: int, w: int) -> tuple[int, int]:
    spec = OPS.get(op)
    args = spec.bind(args)
    return (op_hook_int(op, "params", spec.params(c_in, c_out, **args)),
            op_hook_int(op, "madds", spec.madds(c_in, c_out, h, w, **args)))


def _scaled(size: tuple[int, int], factor: Fraction) -> tuple[int, int]:
    return int(size[0] * factor), int(size[1] * factor)


def graph_cost(graph: Graph, input_size: tuple[int, int]) -> CostReport:
    """Costs of every node on inputs of `input_size` (h, w); a supernet counts all candidates."""
    out_size = _scaled(input_size, graph.nodes[graph.output].size)
    report = CostReport(input_size, out_size)
    for g in graph.nodes.values():
        if g.kind == "input" or g.name in graph.aux_only:  # auxiliary outputs: training only
            continue
        h, w = _scaled(input_size, graph.nodes[g.inputs[0]].size)
        ops = ops_of(g)
        for op, c_in in ops:
            params, madds = op_cost(op, c_in, g.c_out, g.args, h, w)
            params, madds = params * g.exists, madds * g.exists  # a searched depth may remove it
            report.rows.append(CostRow(g.name, g.kind, op, params, madds, (h, w)))
        if not ops:  # a parameter-free node still has its row
            report.rows.append(CostRow(g.name, g.kind, "", 0, 0, (h, w)))
    return report


def ops_of(g: GNode) -> list[tuple[str, int]]:
    """(op, input channels) of what a node computes, as its kind lists them (a choice: every
    candidate)."""
    return checked_cost_ops(g.kind, kind(g.kind).cost_ops(g))


def input_size_for_output(graph: Graph, output_size: tuple[int, int]) -> tuple[int, int]:
    """The input (h, w) that gives an output of `output_size` (e.g. 1280x720 at x2 -> 640x360)."""
    factor = graph.nodes[graph.output].size
    h, w = Fraction(output_size[0]) / factor, Fraction(output_size[1]) / factor
    if h.denominator != 1 or w.denominator != 1:
        raise ValueError(f"output size {output_size[1]}x{output_size[0]} is not a multiple of the "
                         f"model's scale {factor}")
    return int(h), int(w)


def candidate_costs(graph: Graph, label: str, metric: str = "params",
                    input_size: tuple[int, int] = (64, 64)) -> list[float]:
    """Cost of each candidate op of an alpha decision, at the first node that reads it."""
    d = graph.decisions[label]
    g = graph.nodes[d.nodes[0]]
    h, w = _scaled(input_size, graph.nodes[g.inputs[0]].size)
    index = 0 if metric == "params" else 1
    return [float(op_cost(c, g.c_in[0], g.c_out, g.args, h, w)[index]) for c in g.candidates]


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' (width x height, as people write it) -> (h, w)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size '{text}' must look like WIDTHxHEIGHT, e.g. 1280x720") from None
    if w < 1 or h < 1:
        raise ValueError(f"size '{text}' must be at least 1x1 pixels, e.g. 1280x720")
    return h, w
