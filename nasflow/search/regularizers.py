"""Cost regularizers on the architecture: differentiable penalties on softmax(alpha).

`params` is the DLSR paper's L_P (eq. 9): for each alpha decision, the sum over its
candidates of (p_o / sum_c p_c) * softmax(alpha)_o, summed over decisions. `madds` is the
same with Multi-Adds. Costs come from the op registry through nasflow.cost, the one source
the cost table also reads. Unlike the paper's released code, alpha is not detached: the
penalty has a gradient and pushes alpha towards cheaper candidates.

`latency` is the expected latency under the decision weights, read from a latency table
that `nasflow profile` measured on this machine (nasflow/search/latency_table.py): fixed
nodes plus, per decision, the weighted candidate latencies; as a penalty it is divided by
the latency of the uniform weights, so gamma weighs it on the scale of L_P. A budget
(nasflow/search/budget.py) adds its own term. `make_regularizer` builds what a search asks for.

A regularizer is built from the graph once (costs are constants) and called on the
supernet each arch step; it returns (penalty, details) so each decision's term is logged.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from nasflow._plugins import lookup
from nasflow.errors import NasflowError, hook_error
from nasflow.search.budget import Budget, BudgetPenalty
from nasflow.search.decision_costs import DecisionCosts
from nasflow.search.latency_table import LatencyTable, load_table
from nasflow.space.cost import candidate_costs
from nasflow.space.graph import Graph
from nasflow.registry import Registry
from nasflow.compile.supernet import Supernet


class Regularizer(Protocol):
    def __call__(self, model: Supernet) -> tuple[Tensor, dict[str, float]]: ...


RegularizerFactory = Callable[[Graph], Regularizer]
REGULARIZERS: Registry[RegularizerFactory] = Registry("regularizer")
# `@register_regularizer("name")` on a factory graph -> regularizer makes `--regularizer name` work.
register_regularizer: Callable[[str], Callable[[RegularizerFactory], RegularizerFactory]] = REGULARIZERS.decorator()


class CostRegularizer:
    """sum over alpha labels of <normalised candidate costs, softmax(alpha)>."""

    def __init__(self, graph: Graph, metric: str) -> None:
        self.metric = metric
        self.costs: dict[str, Tensor] = {}
        for label, d in graph.decisions.items():
            if d.kind != "alpha":
                continue
            # All candidates of one node read the same input size, so the normalised costs
            # do not depend on the image size (nor do Multi-Adds vs params at one size).
            c = torch.tensor(candidate_costs(graph, label, metric), dtype=torch.float32)
            if c.sum() > 0:  # a decision among free ops (identity, activations) costs nothing
                self.costs[label] = c / c.sum()

    def __call__(self, model: Supernet) -> tuple[Tensor, dict[str, float]]:
        terms = {}
        for label, c in self.costs.items():
            logits = model.arch.logits(label)
            terms[label] = (c.to(logits.device) * F.softmax(logits, dim=-1)).sum()
        if not terms:
            first = next(iter(model.arch_parameters()), None)
            return torch.zeros((), device=first.device if first is not None else None), {}
        penalty = torch.stack(list(terms.values())).sum()
        return penalty, {f"{self.metric}/{label}": float(t.detach()) for label, t in terms.items()}


class ValueCostRegularizer:
    """L_P over every decision of a space with value decisions: for each op or value decision,
    the costs of what it moves at each of its options (the other decisions at their current
    softmax, held constant), normalised to sum 1, weighted by its softmax. On a space without
    value decisions this is CostRegularizer's sum (which is used there, unchanged)."""

    def __init__(self, graph: Graph, metric: str) -> None:
        self.metric = metric
        self.costs = DecisionCosts.from_graph(graph, metric)
        self.labels = [k for k, d in graph.decisions.items() if d.kind in ("alpha", "value")]

    def __call__(self, model: Supernet) -> tuple[Tensor, dict[str, float]]:
        held = {k: w.detach() for k, w in model.arch.softmax().items()}
        terms = {}
        for label in self.labels:
            c = self.costs.given(label, held)
            if float(c.sum()) > 0:  # a decision among free ops costs nothing
                logits = model.arch.logits(label)
                terms[label] = (c.to(logits.device) / c.sum() * F.softmax(logits, dim=-1)).sum()
        if not terms:
            first = next(iter(model.arch_parameters()), None)
            return torch.zeros((), device=first.device if first is not None else None), {}
        penalty = torch.stack(list(terms.values())).sum()
        return penalty, {f"{self.metric}/{label}": float(t.detach()) for label, t in terms.items()}


class LatencyRegularizer:
    """Expected latency (ms) under softmax(alpha / beta), relative to the uniform weights'."""

    def __init__(self, graph: Graph, table: LatencyTable) -> None:
        self.costs = table.decision_costs(graph)
        uniform = {label: torch.full((len(d.options),), 1.0 / len(d.options)) for label, d in graph.decisions.items()}
        self.reference = max(float(self.costs.expected(uniform)), 1e-9)

    def expected_ms(self, model: Supernet) -> Tensor:
        return self.costs.expected(model.arch.softmax())

    def __call__(self, model: Supernet) -> tuple[Tensor, dict[str, float]]:
        ms = self.expected_ms(model)
        return ms / self.reference, {"latency/expected_ms": float(ms.detach())}


class CheckedRegularizer:
    """A regularizer looked up by name (a user's too), its every return checked where it enters
    the search: (a scalar tensor, {term: float}); else one HookError naming it."""

    def __init__(self, name: str, inner: Regularizer) -> None:
        if not callable(inner):
            raise hook_error(f"regularizer '{name}' factory", "a callable model -> (penalty, details)", inner)
        self.name, self.inner = name, inner

    def __call__(self, model: Supernet) -> tuple[Tensor, dict[str, float]]:
        value = self.inner(model)
        expected = "a tuple (scalar tensor penalty, {term: float})"
        if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], Tensor)
                and value[0].numel() == 1 and isinstance(value[1], dict)
                and all(isinstance(k, str) and isinstance(v, numbers.Real) and not isinstance(v, bool)
                        for k, v in value[1].items())):
            raise hook_error(f"regularizer '{self.name}'", expected, value)
        return value


class SumOfRegularizers:
    def __init__(self, parts: list[Regularizer]) -> None:
        self.parts = parts

    def __call__(self, model: Supernet) -> tuple[Tensor, dict[str, float]]:
        penalty, details = self.parts[0](model)
        for part in self.parts[1:]:
            p, d = part(model)
            penalty, details = penalty + p, {**details, **d}
        return penalty, details


def _latency_needs_a_table(graph: Graph) -> Regularizer:
    raise NasflowError("the latency regularizer reads a latency table: --latency-table FILE "
                       "(write one on this machine with nasflow profile SPACE -o FILE)")


@register_regularizer("params")
def _params(graph: Graph) -> Regularizer:
    return ValueCostRegularizer(graph, "params") if graph.value_decisions else CostRegularizer(graph, "params")


@register_regularizer("madds")
def _madds(graph: Graph) -> Regularizer:
    return ValueCostRegularizer(graph, "madds") if graph.value_decisions else CostRegularizer(graph, "madds")


register_regularizer("latency")(_latency_needs_a_table)


def make_regularizer(graph: Graph, name: str | None, latency_table: str | None = None,
                     budget: str | None = None) -> Regularizer | None:
    """The regularizer a search asks for: `name` (with the table for latency), plus the
    budget's penalty; None when neither. The table must fit the space and this machine."""
    table = None
    if latency_table is not None:
        table = load_table(latency_table)
        table.check_space(graph, f"latency table '{latency_table}'")
        table.check_machine()
    parts: list[Regularizer] = []
    if name == "latency" and table is not None:
        parts.append(LatencyRegularizer(graph, table))
    elif name:
        parts.append(CheckedRegularizer(name, get_regularizer(name)(graph)))
    if budget is not None:
        b = Budget.parse(budget)
        parts.append(BudgetPenalty(graph, b, b.costs(graph, table)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else SumOfRegularizers(parts)


def get_regularizer(name: str) -> RegularizerFactory:
    """A regularizer factory by registered name, `nasflow.regularizers` entry point, or 'module:attr'."""
    return lookup(REGULARIZERS, "nasflow.regularizers", name)
