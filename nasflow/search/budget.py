"""Cost budgets: `latency=40ms`, `params=300k`, `madds=20G` (one type for every search), or a
band `params=50k..56k` whose floor the derived architecture must also reach.

    budget = Budget.parse("latency=40ms")
    budget.costs(graph, table)              # DecisionCosts in the budget's metric
    budget.report(cost)                     # "38.2 ms of 40 ms: under"

A floor is for a target with a lower bound too (an architecture that uses most of a budget):
the evolution (spos, sandwich, `nasflow derive RUN --budget`) admits only architectures
within the band. The sandwich rule still trains every architecture under the limit (the
shared weights serve the whole range). A strategy that learns alpha refuses a band: a penalty
pushing the cost up below the floor was tried, and pushed down from above an architecture
overshot below the floor and did not come back within the search (Adam's memory of the
large gradients).

The search is steered below a budget by BudgetPenalty, a regularizer that acts only while
the architecture is over it: while the expected cost under softmax(alpha / beta), or the
cost of the architecture derive would take now (argmax alpha, top-k beta), is above the
budget, the penalty is STRENGTH * expected cost / budget; below, it is zero and the task's loss alone
moves the architecture. Watching the derived cost too matters: the expected cost can be
under the budget while the argmax picks are over it.

Multi-Adds depend on the image size: a `madds` budget counts them at an input of `size`
(h, w; default the input of the task's cost size, as `nasflow cost`: SR's 1280x720 output).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from torch import Tensor

from nasflow.derive.genotype import genotype_from_arch
from nasflow.errors import NasflowError
from nasflow.search.decision_costs import DecisionCosts
from nasflow.search.latency_table import LatencyTable
from nasflow.space.cost import input_size_for_output
from nasflow.space.graph import Graph
from nasflow.tasks.contract import default_cost_size

_UNITS = {
    "latency": {"us": 1e-3, "ms": 1.0, "s": 1e3, "": 1.0},  # in ms
    "params": {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9},
    "madds": {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12},
}
_FORMAT = "latency=40ms, params=300k, madds=20G or a band params=50k..56k"
# A budget is a constraint, not a preference: while over it, its term (times gamma) must
# outweigh the task's gradient on alpha. Adam remembers the large gradients in its second
# moment, so once under, the task pulls the architecture back only slowly.
STRENGTH = 10.0


@dataclass(frozen=True)
class Budget:
    metric: str  # latency (ms) | params | madds
    limit: float
    floor: float = 0.0  # a band's lower end (0: none)

    @classmethod
    def parse(cls, text: str) -> Budget:
        metric, sep, value = text.strip().partition("=")
        metric = metric.strip().lower()
        if not sep or metric not in _UNITS:
            raise NasflowError(f"budget '{text}' must look like {_FORMAT}")
        low, band, high = value.partition("..")
        limit = _amount(text, metric, high if band else value)
        floor = _amount(text, metric, low) if band else 0.0
        if floor >= limit:
            raise NasflowError(f"budget '{text}': the band's floor must be below its limit, e.g. {metric}=50k..56k")
        return cls(metric, limit, floor)

    def __str__(self) -> str:
        return f"{self.metric}={self.span()}"

    def span(self) -> str:
        """The limit, or the band `floor..limit`, formatted: `56k`, `50.4k..56k`."""
        return f"{self.format(self.floor)}..{self.format(self.limit)}" if self.floor else self.format(self.limit)

    def format(self, value: float) -> str:
        if self.metric == "latency":
            return f"{value:.1f}ms" if value < 1e4 else f"{value / 1e3:.2f}s"
        for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if value >= scale:
                return f"{value / scale:.3g}{unit}"
        return f"{value:.0f}"

    def costs(self, graph: Graph, table: LatencyTable | None = None,
              size: tuple[int, int] | None = None) -> DecisionCosts:
        """The budget's metric split by decision: from the table (latency) or the op registry."""
        if self.metric == "latency":
            if table is None:
                raise NasflowError("a latency budget needs a latency table: --latency-table FILE "
                                   "(write one with nasflow profile SPACE -o FILE)")
            return table.decision_costs(graph)
        if size is None:
            size = input_size_for_output(graph, default_cost_size(graph.space)) if self.metric == "madds" else (64, 64)
        return DecisionCosts.from_graph(graph, self.metric, size)

    def report(self, cost: float) -> str:
        if cost > self.limit:
            state = "OVER"
        elif cost < self.floor:
            state = "BELOW the floor"
        else:
            state = "within" if self.floor else "under"
        return f"{self.format(cost)} of {self.span()} ({self.metric}): {state}"


def _amount(text: str, metric: str, value: str) -> float:
    """One side of a budget: a number with one of the metric's units, above 0."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", value.lower())
    units = _UNITS[metric]
    if m is None or m.group(2) not in units:
        raise NasflowError(f"budget '{text}': the value must be a number with a unit among "
                           f"{', '.join(u for u in units if u) or 'none'}, e.g. {_FORMAT}")
    amount = float(m.group(1)) * units[m.group(2)]
    if amount <= 0:
        raise NasflowError(f"budget '{text}' must be above 0")
    return amount


def check_budget_floor(budget: str | None, strategy: str, learns_arch: bool) -> None:
    """One error, before anything is built, for a band given to a strategy that learns alpha."""
    b = Budget.parse(budget) if budget is not None else None
    if b is not None and b.floor and learns_arch:
        raise NasflowError(f"budget '{budget}': a band's floor is for strategies that pick the architecture by "
                           f"evolution (spos, sandwich); --strategy {strategy} learns alpha, which a budget holds "
                           f"under its limit only: give --budget {b.metric}={b.format(b.limit)}")


class BudgetPenalty:
    """A regularizer: expected cost / budget while the architecture is over the budget, else 0."""

    def __init__(self, graph: Graph, budget: Budget, costs: DecisionCosts) -> None:
        self.graph, self.budget, self.costs = graph, budget, costs

    def __call__(self, model) -> tuple[Tensor, dict[str, float]]:  # model: Supernet
        weights = model.arch.softmax()
        expected = self.costs.expected(weights)
        logits = {label: model.arch.logits(label) for label in self.graph.decisions}
        derived = self.costs.of_genotype(self.graph, genotype_from_arch(self.graph, logits))
        over = float(expected.detach()) > self.budget.limit or derived > self.budget.limit
        # Below the budget: zero, but still a function of alpha, so autograd gives a zero gradient.
        penalty = STRENGTH * expected / self.budget.limit * (1.0 if over else 0.0)
        m = self.budget.metric
        return penalty, {f"budget/{m}_expected": float(expected.detach()), f"budget/{m}_derived": derived,
                         f"budget/{m}_limit": self.budget.limit}


def derived_against_budget(graph: Graph, genotype, budget: str, latency_table: str | None = None) -> str:
    """One line: the derived architecture's cost against the budget (graph: the supernet)."""
    from nasflow.search.latency_table import load_table

    b = Budget.parse(budget)
    table = load_table(latency_table) if latency_table is not None else None
    cost = b.costs(graph, table).of_genotype(graph, genotype)
    where = "" if table is None else f", predicted on {table.machine.kind} '{table.machine.name}'"
    return f"derived architecture: {b.report(cost)}{where}"
