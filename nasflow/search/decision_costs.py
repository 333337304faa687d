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

Value decisions (nasflow.space.values) make a node's cost a table over the values of the
decisions it reads (a conv's params over the widths of its input and output): a ValueCost,
whose expectation under independent weights per decision is exact and differentiable
(sum over value combinations of cost * product of their weights), so a width's, a kernel
size's and a depth's share of the cost is counted as exactly as an op's.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import networkx as nx

from nasflow.derive.record import Genotype
from nasflow.errors import NasflowError
from nasflow.space.cost import op_cost, ops_of
from nasflow.space.graph import GNode, Graph
from nasflow.space.values import Sym

if TYPE_CHECKING:
    from torch import Tensor

# torch is imported where tensors are made: `nasflow cost` reads a space's cheapest and
# dearest architecture from here without it.

METRICS = ("params", "madds", "latency")
# Value assignments an extreme (the cheapest, the dearest architecture) tries one by one;
# beyond this many it improves one value decision at a time.
EXACT_VALUE_GRID = 4096


@dataclass(frozen=True)
class ValueCost:
    """A cost that value decisions move: its value at each combination of the values of
    `deps` (`table`, in itertools.product order of `domains`)."""

    deps: tuple[str, ...]
    domains: tuple[tuple[int, ...], ...]
    table: tuple[float, ...]

    @classmethod
    def of(cls, x: int | float, scale: float = 1.0) -> float | ValueCost:
        """A Sym as a ValueCost (times `scale`), anything else as a float."""
        if not isinstance(x, Sym):
            return float(x) * scale
        return cls(x.deps, x.domains, tuple(float(v) * scale for v in x.table.values()))

    def _grid(self, like: Tensor) -> Tensor:
        import torch

        return torch.tensor(self.table, dtype=like.dtype, device=like.device).view(*map(len, self.domains))

    def expected(self, weights: dict[str, Tensor]) -> Tensor:
        """sum over value combinations of cost * the product of their weights."""
        import torch

        out = self._grid(weights[self.deps[0]])
        for w in (weights[d] for d in self.deps):  # contract the leading dim each time
            out = torch.tensordot(w, out, dims=([0], [0]))
        return out

    def given(self, label: str, weights: dict[str, Tensor]) -> Tensor:
        """The expected cost with `label` at each of its values (a vector over them)."""
        import torch

        grid = self._grid(weights[self.deps[0]])
        j = self.deps.index(label)
        grid = grid.movedim(j, 0)
        for d in (d for d in self.deps if d != label):
            grid = torch.tensordot(grid, weights[d], dims=([1], [0]))
        return grid

    def at(self, values: dict[str, int]) -> float:
        missing = [d for d in self.deps if d not in values]
        if missing:
            raise NasflowError(f"no value for {', '.join(missing)}: the genotype is from another space")
        index = 0
        for d, dom in zip(self.deps, self.domains):
            index = index * len(dom) + dom.index(values[d])
        return self.table[index]


def _expected(c: float | ValueCost, weights: dict[str, Tensor]) -> Tensor | float:
    return c.expected(weights) if isinstance(c, ValueCost) else c


def _at(c: float | ValueCost, values: dict[str, int]) -> float:
    return c.at(values) if isinstance(c, ValueCost) else c


@dataclass
class NodeOptions:
    """One node that reads a decision: its options' costs, in the decision's option order
    (a ValueCost where value decisions move an option's cost)."""

    node: str
    label: str
    costs: list[float | ValueCost]
    k: int = 1  # a dense node's top-k; 1 for a choice node


@dataclass
class DecisionCosts:
    metric: str
    fixed: float = 0.0
    nodes: list[NodeOptions] = field(default_factory=list)
    # Nodes without an op or input decision whose cost value decisions move.
    values: list[ValueCost] = field(default_factory=list)

    def expected(self, weights: dict[str, Tensor]) -> Tensor:
        """Cost under `weights` (softmax(alpha) / softmax(beta) / over values, per label), differentiable."""
        import torch

        first = next(iter(weights.values()), None)
        total = torch.tensor(self.fixed, dtype=torch.float32, device=first.device if first is not None else None)
        for v in self.values:
            total = total + v.expected(weights)
        for n in self.nodes:
            p = weights[n.label]
            if any(isinstance(c, ValueCost) for c in n.costs):
                costs = torch.stack([torch.as_tensor(_expected(c, weights), dtype=p.dtype, device=p.device)
                                     for c in n.costs])
            else:
                costs = torch.tensor(n.costs, dtype=p.dtype, device=p.device)
            total = total + n.k * (costs * p).sum()
        return total

    def given(self, label: str, weights: dict[str, Tensor]) -> Tensor:
        """Per option of decision `label`: the expected cost of what that decision moves, with
        the label at that option and every other decision at `weights` (a vector)."""
        import torch

        d_kind = "value" if any(label in v.deps for v in self.values) or any(
            isinstance(c, ValueCost) and label in c.deps for n in self.nodes for c in n.costs) else "node"
        parts: list[Tensor] = []
        ref = weights[label]
        for n in self.nodes:
            if n.label == label:
                parts.append(n.k * torch.stack([torch.as_tensor(_expected(c, weights), dtype=ref.dtype,
                                                                device=ref.device) for c in n.costs]))
            elif d_kind == "value":
                p = weights[n.label]
                for c, pc in zip(n.costs, p):
                    if isinstance(c, ValueCost) and label in c.deps:
                        parts.append(n.k * pc * c.given(label, weights))
        parts += [v.given(label, weights) for v in self.values if label in v.deps]
        if not parts:
            return torch.zeros_like(ref)
        return torch.stack(parts).sum(0)

    def of_genotype(self, graph: Graph, genotype: Genotype) -> float:
        """The derived architecture's cost: each choice node's picked op, each dense node's
        kept inputs, each value decision's number."""
        total = self.fixed + sum(v.at(genotype.values) for v in self.values)
        for n in self.nodes:
            d = graph.decisions[n.label]
            if d.kind == "alpha":
                picked = genotype.ops(n.label) if n.label in genotype.choices else [None]  # kept ops: summed
            else:
                picked = genotype.edges.get(n.label, [])
            for option in picked:
                if option not in d.options:
                    raise NasflowError(f"genotype picks '{option}' for '{n.label}', which is not one of "
                                       f"its options ({', '.join(d.options)})")
                total += _at(n.costs[d.options.index(option)], genotype.values)
        return total

    def extreme(self, graph: Graph, dearest: bool = False,
                allowed: dict[str, list[int]] | None = None) -> tuple[float, dict[str, tuple[int, ...]]]:
        """The least (or, `dearest`, the most) cost of one architecture, and its picks: the
        option indices per decision (a value decision's index into its values), among the
        `allowed` ones (default: all but the space's `never_derive`).

        At fixed values the op and input decisions add up, so each takes its k cheapest
        options (summed over the nodes sharing its label). The value decisions' assignments
        are all tried when there are at most EXACT_VALUE_GRID of them; beyond that, from the
        smallest values (the largest, for the most) one value decision at a time moves to its
        best value until none improves."""
        allowed = allowed or {label: [i for i, o in enumerate(d.options) if o not in d.never_derive]
                              for label, d in graph.decisions.items()}
        labels = [label for label, d in graph.decisions.items() if d.kind == "value"]
        domains = [[graph.decisions[label].values[i] for i in allowed[label]] for label in labels]
        best = max if dearest else min

        def better(a: float, b: float) -> bool:
            return a > b if dearest else a < b

        def at(values: Iterable[int]) -> tuple[float, dict[str, tuple[int, ...]]]:
            return self._picks_at(graph, allowed, dict(zip(labels, values)), dearest)

        if math.prod(map(len, domains)) <= EXACT_VALUE_GRID:
            return best((at(combo) for combo in itertools.product(*domains)), key=lambda r: r[0])
        current = [best(dom) for dom in domains]
        found = at(current)
        moved = True
        while moved:  # each move strictly improves, over finitely many assignments: it ends
            moved = False
            for i, dom in enumerate(domains):
                for v in dom:
                    trial = at(current[:i] + [v] + current[i + 1:])
                    if better(trial[0], found[0]):
                        found, current[i], moved = trial, v, True
        return found

    def _picks_at(self, graph: Graph, allowed: dict[str, list[int]], values: dict[str, int],
                  dearest: bool) -> tuple[float, dict[str, tuple[int, ...]]]:
        """The extreme architecture at fixed `values`: each op and input decision's k extreme options."""
        per_label: dict[str, list[float]] = {}
        for n in self.nodes:
            row = per_label.setdefault(n.label, [0.0] * len(n.costs))
            for j, c in enumerate(n.costs):
                row[j] += _at(c, values)
        total = self.fixed + sum(v.at(values) for v in self.values)
        picks: dict[str, tuple[int, ...]] = {}
        for label, d in graph.decisions.items():
            if d.kind == "value":
                picks[label] = (d.values.index(values[label]),)
                continue
            row = per_label.get(label, [0.0] * len(d.options))
            kept = sorted(allowed[label], key=lambda j: row[j], reverse=dearest)[: d.topk if d.kind == "beta" else 1]
            total += sum(row[j] for j in kept)
            picks[label] = tuple(sorted(kept))
        return total, picks

    @classmethod
    def from_graph(cls, graph: Graph, metric: str, input_size: tuple[int, int] = (64, 64)) -> DecisionCosts:
        """Parameters or Multi-Adds (at an input of `input_size`, h x w) from the op registry."""
        if metric not in ("params", "madds"):
            raise NasflowError(f"'{metric}' is not counted from the op registry; use params or madds "
                               "(latency comes from a table: nasflow profile)")
        index = 0 if metric == "params" else 1

        def cost(g: GNode, option: str | None) -> float | ValueCost:
            node, k = option_node(graph, g, option)
            total = sum(op_cost(op, c_in, node.c_out, node.args, *size)[index] * node.exists
                        for op, c_in, size in _ops(graph, node, input_size))
            return ValueCost.of(total, 1.0 / k)  # exact: Syms keep a table per value

        return split_by_decision(graph, metric, cost)


def split_by_decision(graph: Graph, metric: str,
                      cost: Callable[[GNode, str | None], float | ValueCost]) -> DecisionCosts:
    """Build DecisionCosts from `cost(node, option)`: option None for a node without a
    decision, a candidate op for a choice node, a candidate input for a dense node (the cost
    of its op on k copies of that input, already divided by k); a ValueCost where value
    decisions move it."""
    out = DecisionCosts(metric)
    for g in graph.nodes.values():
        if g.kind == "input":
            continue
        label = decision_of(graph, g)
        if label is None:
            c = cost(g, None)
            if isinstance(c, ValueCost):
                out.values.append(c)
            else:
                out.fixed += c
        else:
            d = graph.decisions[label]
            out.nodes.append(NodeOptions(g.name, label, [cost(g, o) for o in d.options],
                                         d.topk if d.kind == "beta" else 1))
    return out


def architecture_range(graph: Graph, input_size: tuple[int, int]) -> dict[str, dict[str, int]] | None:
    """{"cheapest": {"params": P, "madds": M}, "dearest": {...}}: the cost of the space's
    cheapest and dearest single architecture (Multi-Adds at an input of `input_size`, h x w;
    DecisionCosts.extreme, each metric's own extremes, so the cheapest in params need not be
    the cheapest in Multi-Adds); None where those sums are not exact (not `every_node_counts`)."""
    if not every_node_counts(graph):
        return None
    out: dict[str, dict[str, int]] = {"cheapest": {}, "dearest": {}}
    for metric in ("params", "madds"):
        costs = DecisionCosts.from_graph(graph, metric, input_size)
        for end in out:
            out[end][metric] = round(costs.extreme(graph, dearest=end == "dearest")[0])
    return out


def every_node_counts(graph: Graph) -> bool:
    """Whether every architecture of the space runs every node (so DecisionCosts' sums are
    exact, not only the search's model): no input decision can cut a branch off the output
    (a DARTS cell's unkept edges can), and no auxiliary head (training only) is counted."""
    dag = graph.dag.copy()
    for g in graph.nodes.values():
        if g.kind == "dense" and decision_of(graph, g) is not None:
            dag.remove_edges_from(list(dag.in_edges(g.name)))
    kept = nx.ancestors(dag, graph.output) | {graph.output}
    return not graph.aux_only and all(name in kept for name, g in graph.nodes.items() if g.kind != "input")


def decision_of(graph: Graph, g: GNode) -> str | None:
    """The op or input decision label a node reads, if any (a dense node keeping all inputs
    reads none; value decisions move costs through their tables, not a label)."""
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
