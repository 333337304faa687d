"""A cost (parameters, Multi-Adds or measured latency) split by architecture decision.

    costs = DecisionCosts.from_graph(graph, "madds", input_size=(360, 640))
    costs.expected(model.arch.softmax())   # differentiable in alpha and beta
    costs.of_genotype(genotype)            # the derived architecture's cost

The cost of a space under its decisions is a fixed part (nodes without a choice) plus, for
each choice node, its candidates' costs weighted by softmax(alpha) of its label, plus, for
each dense node that reads a beta, k times its candidate inputs' costs weighted by
softmax(beta) (k = its top-k). A candidate input's cost is the node's op on a merge of k
copies of that input, divided by k: a derived node keeping inputs i and j costs c_i + c_j,
which is exact when the inputs have the same channels (DLSR's cells). With one-hot weights
(k = 1) the expected cost is the derived architecture's. Branches that a derived
architecture prunes (inputs no dense node kept) are still counted.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from nasflow.derive.genotype import Genotype
from nasflow.errors import NasflowError
from nasflow.space.cost import op_cost, ops_of
from nasflow.space.graph import GNode, Graph

METRICS = ("params", "madds", "latency")


@dataclass
class NodeOptions:
    """One node that reads a decision: its options' costs, in the decision's option order."""

    node: str
    label: str
    costs: list[float]
    k: int = 1  # a dense node's top-k; 1 for a choice node


@dataclass
class DecisionCosts:
    metric: str
    fixed: float = 0.0
    nodes: list[NodeOptions] = field(default_factory=list)

    def expected(self, weights: dict[str, Tensor]) -> Tensor:
        """Cost under `weights` (softmax(alpha) / softmax(beta) per label), differentiable."""
        first = next(iter(weights.values()), None)
        total = torch.tensor(self.fixed, dtype=torch.float32, device=first.device if first is not None else None)
        for n in self.nodes:
            p = weights[n.label]
            total = total + n.k * (torch.tensor(n.costs, dtype=p.dtype, device=p.device) * p).sum()
        return total

    def of_genotype(self, graph: Graph, genotype: Genotype) -> float:
        """The derived architecture's cost: each choice node's picked op, each dense node's kept inputs."""
        total = self.fixed
        for n in self.nodes:
            d = graph.decisions[n.label]
            if d.kind == "alpha":
                picked = [genotype.choices.get(n.label)]
            else:
                picked = genotype.edges.get(n.label, [])
            for option in picked:
                if option not in d.options:
                    raise NasflowError(f"genotype picks '{option}' for '{n.label}', which is not one of "
                                       f"its options ({', '.join(d.options)})")
                total += n.costs[d.options.index(option)]
        return total

    @classmethod
    def from_graph(cls, graph: Graph, metric: str, input_size: tuple[int, int] = (64, 64)) -> DecisionCosts:
        """Parameters or Multi-Adds (at an input of `input_size`, h x w) from the op registry."""
        if metric not in ("params", "madds"):
            raise NasflowError(f"'{metric}' is not counted from the op registry; use params or madds "
                               "(latency comes from a table: nasflow profile)")
        index = 0 if metric == "params" else 1

        def cost(g: GNode, option: str | None) -> float:
            node, k = option_node(graph, g, option)
            return sum(float(op_cost(op, c_in, node.c_out, node.args, *size)[index])
                       for op, c_in, size in _ops(graph, node, input_size)) / k

        return split_by_decision(graph, metric, cost)


def split_by_decision(graph: Graph, metric: str,
                      cost: Callable[[GNode, str | None], float]) -> DecisionCosts:
    """Build DecisionCosts from `cost(node, option)`: option None for a node without a
    decision, a candidate op for a choice node, a candidate input for a dense node (the cost
    of its op on k copies of that input, already divided by k)."""
    out = DecisionCosts(metric)
    for g in graph.nodes.values():
        if g.kind == "input":
            continue
        label = decision_of(graph, g)
        if label is None:
            out.fixed += cost(g, None)
        else:
            d = graph.decisions[label]
            out.nodes.append(NodeOptions(g.name, label, [cost(g, o) for o in d.options],
                                         d.topk if d.kind == "beta" else 1))
    return out


def decision_of(graph: Graph, g: GNode) -> str | None:
    """The decision label a node reads, if any (a dense node keeping all inputs reads none)."""
    if g.label is not None and g.label in graph.decisions:  # only decision kinds set a label
        return g.label
    return None


def option_node(graph: Graph, g: GNode, option: str | None) -> tuple[GNode, int]:
    """The node as a derived architecture has it for one option, and what to divide its cost
    by: a choice node becomes an op node; a dense node reads k copies of the candidate input."""
    if option is None:
        return g, 1
    if g.kind == "choice":
        return replace(g, kind="op", op=option, candidates=[], label=None), 1
    d = graph.decisions[g.label]
    i = d.options.index(option)  # options are the inputs as written; g.inputs the expanded names
    k = d.topk
    return replace(g, inputs=[g.inputs[i]] * k, candidates=[option] * k, c_in=[g.c_in[i]] * k, label=None), k


def _ops(graph: Graph, node: GNode, input_size: tuple[int, int]) -> list[tuple[str, int, tuple[int, int]]]:
    """(op, input channels, h x w) of what a node without a decision runs, for the cost model."""
    src = graph.nodes[node.inputs[0]].size
    size = (int(input_size[0] * src), int(input_size[1] * src))
    return [(op, c_in, size) for op, c_in in ops_of(node)]
