"""Derivation rules: which candidate each decision keeps once the search is over.

A rule answers two questions per decision: which options are eligible at all, and how they
rank. The default ranks by the arch logits (argmax alpha, top-k beta, ties to the earlier
option) with every option eligible but those the space marks `never_derive` (a property of
the space, as DARTS' `zero`): DARTS' and MiLeNAS's rule. A strategy sets its own
(e.g. DARTS' "never derive `zero`", or ranking by a Dirichlet's mean) through
`Strategy.derivation_rule()`; `derive` and the search loop's genotypes use it.
"""
from __future__ import annotations

import torch
from torch import Tensor

from nasflow.errors import NasflowError
from nasflow.space.graph import Decision


class DerivationRule:
    """Rank by the logits; every option eligible but the space's `never_derive` ones."""

    def eligible(self, decision: Decision, option: str) -> bool:
        """Whether `option` (a candidate op of an alpha, an input of a beta) may be derived;
        a strategy overriding this decides alone (it may allow what the space excludes)."""
        return option not in decision.never_derive

    def scores(self, decision: Decision, logits: Tensor) -> Tensor:
        """One score per option, higher is better (any order-preserving map of the logits
        gives the same choice; a strategy may rank by something else)."""
        return logits

    def pick(self, decision: Decision, logits: Tensor, k: int) -> list[str]:
        """The k best eligible options, best first (a stable order: ties go to the earlier)."""
        scores = self.scores(decision, logits.detach().float().cpu())
        allowed = [i for i, o in enumerate(decision.options) if self.eligible(decision, o)]
        if len(allowed) < k:
            raise NasflowError(f"decision '{decision.label}' has {len(allowed)} eligible option(s) "
                               f"under this derivation rule but needs {k}")
        if len(allowed) == len(decision.options):  # the plain path, as it has always ranked
            order = torch.argsort(scores, descending=True, stable=True)[:k]
            return [decision.options[int(i)] for i in order]
        sub = scores[allowed]
        order = torch.argsort(sub, descending=True, stable=True)[:k]
        return [decision.options[allowed[int(i)]] for i in order]
