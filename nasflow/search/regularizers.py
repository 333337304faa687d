"""Cost regularizers on the architecture: differentiable penalties on softmax(alpha).

`params` is the DLSR paper's L_P (eq. 9): for each alpha decision, the sum over its
candidates of (p_o / sum_c p_c) * softmax(alpha)_o, summed over decisions. `madds` is the
same with Multi-Adds. Costs come from the op registry through nasflow.cost, the one source
the cost table also reads. Unlike the paper's released code, alpha is not detached: the
penalty has a gradient and pushes alpha towards cheaper candidates.

A regularizer is built from the graph once (costs are constants) and called on the
supernet each arch step; it returns (penalty, details) so each decision's term is logged.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from nasflow._plugins import lookup
from nasflow.space.cost import candidate_costs
from nasflow.space.graph import Graph
from nasflow.registry import Registry
from nasflow.compile.supernet import Supernet


class Regularizer(Protocol):
    def __call__(self, model: Supernet) -> tuple[Tensor, dict[str, float]]: ...


RegularizerFactory = Callable[[Graph], Regularizer]
REGULARIZERS: Registry[RegularizerFactory] = Registry("regularizer")


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


REGULARIZERS.add("params", lambda graph: CostRegularizer(graph, "params"))
REGULARIZERS.add("madds", lambda graph: CostRegularizer(graph, "madds"))


def get_regularizer(name: str) -> RegularizerFactory:
    """A regularizer factory by registered name, `nasflow.regularizers` entry point, or 'module:attr'."""
    return lookup(REGULARIZERS, "nasflow.regularizers", name)
