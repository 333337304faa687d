"""Derivation rules: which candidate each decision keeps once the search is over.

A rule answers two questions per decision: which options are eligible at all, and how they
rank. The default ranks by the arch logits (argmax alpha, top-k beta, ties to the earlier
option) with every option eligible but those the space marks `never_derive` (a property of
the space, as DARTS' `zero`): DARTS' and MiLeNAS's rule. A strategy sets its own
(e.g. DARTS' "never derive `zero`", or ranking by a Dirichlet's mean) through
`Strategy.derivation_rule()`; `derive` and the search loop's genotypes use it.

A rule may keep several ops for one choice (`keep`: Fair DARTS keeps every op whose sigmoid
weight is above a threshold, DARTS+ several): the genotype then lists them and the derived
node is their sum, as the search computed it (nasflow.derive.kinds).

A node's inputs (a beta decision) rank as its dense node's `rank` says: by beta (the
default), by the strongest derivable alpha of the choice node each input is (DARTS: the
edge's best op that is not `none`), or by their product (softmax weights). A rule's
`input_rank` (not None) overrides the space's.
"""
from __future__ import annotations

import torch
from torch import Tensor

from nasflow.errors import NasflowError, hook_error
from nasflow.space.graph import Decision


RANKS = ("beta", "alpha", "beta_alpha")


def checked_rule(hook: str, value: object) -> DerivationRule:
    """What a strategy's `derivation_rule()` returned, when it is a DerivationRule."""
    if not isinstance(value, DerivationRule):
        raise hook_error(hook, "a nasflow.derive.rule.DerivationRule", value)
    return value


def checked_scores(rule: DerivationRule, hook: str, decision: Decision, value: object) -> Tensor:
    """What a rule's `scores` / `input_scores` returned: a 1-D tensor, one score per option."""
    if not isinstance(value, Tensor) or tuple(value.shape) != (len(decision.options),):
        got = f" of shape {tuple(value.shape)}" if isinstance(value, Tensor) else ""
        raise hook_error(f"derivation rule {type(rule).__name__} {hook}",
                         f"a 1-D tensor of {len(decision.options)} scores (one per option of '{decision.label}')",
                         value, f"got a tensor{got}" if got else "")
    return value


def checked_pick(rule: DerivationRule, decision: Decision, k: int, value: object) -> list[str]:
    """What a rule's `pick` returned: a list of k distinct options of `decision`."""
    if (not isinstance(value, (list, tuple)) or len(value) != k or len(set(value)) != k
            or not all(isinstance(o, str) and o in decision.options for o in value)):
        raise hook_error(f"derivation rule {type(rule).__name__} pick",
                         f"a list of {k} distinct option(s) of '{decision.label}' ({', '.join(decision.options)})", value)
    return list(value)


def checked_keep(rule: DerivationRule, decision: Decision, value: object) -> list[str]:
    """What a rule's `keep` returned: a non-empty list of distinct options of `decision`."""
    if (not isinstance(value, (list, tuple)) or not value or len(set(value)) != len(value)
            or not all(isinstance(o, str) and o in decision.options for o in value)):
        raise hook_error(f"derivation rule {type(rule).__name__} keep",
                         f"a non-empty list of distinct option(s) of '{decision.label}' ({', '.join(decision.options)})",
                         value)
    return list(value)


class DerivationRule:
    """Rank by the logits; every option eligible but the space's `never_derive` ones."""

    input_rank: str | None = None  # None: as the space's dense node says (Decision.rank)

    def eligible(self, decision: Decision, option: str) -> bool:
        """Whether `option` (a candidate op of an alpha, an input of a beta) may be derived;
        a strategy overriding this decides alone (it may allow what the space excludes)."""
        return option not in decision.never_derive

    def scores(self, decision: Decision, logits: Tensor) -> Tensor:
        """One score per option, higher is better (any order-preserving map of the logits
        gives the same choice; a strategy may rank by something else)."""
        return logits

    def edge_strength(self, decision: Decision, logits: Tensor) -> float:
        """How strong an edge (a choice node feeding a dense node) is: the largest softmax
        weight among its derivable candidates (DARTS ranks a node's edges so, `none` left out)."""
        weights = torch.softmax(logits.detach().float().cpu(), dim=-1)
        return max(float(weights[i]) for i, o in enumerate(decision.options) if self.eligible(decision, o))

    def input_scores(self, decision: Decision, logits: Tensor, edges: list[float | None]) -> Tensor:
        """Scores of a beta decision's inputs: `edges[i]` is the edge_strength of input i
        (None when that input is not a choice node). Ranked as `input_rank`, else the space's."""
        rank = self.input_rank or decision.rank
        if rank not in RANKS:
            raise NasflowError(f"derivation rule ranks inputs by '{rank}'; use one of {', '.join(RANKS)}")
        if rank == "beta":
            return self.scores(decision, logits)
        missing = [decision.options[i] for i, e in enumerate(edges) if e is None]
        if missing:
            raise NasflowError(f"decision '{decision.label}' ranks its inputs by alpha, but input(s) "
                               f"{', '.join(missing)} are not choice nodes; rank them by beta")
        strength = torch.tensor([float(e) for e in edges])  # type: ignore[arg-type]
        if rank == "alpha":
            return strength
        return torch.softmax(logits.detach().float().cpu(), dim=-1) * strength

    def keep(self, decision: Decision, logits: Tensor) -> list[str]:
        """The op(s) a choice (an alpha decision) keeps, best first: one by default (`pick`
        with k = 1). A rule that keeps several returns them all; the derived node sums them."""
        return checked_pick(self, decision, 1, self.pick(decision, logits, 1))  # a wrong pick named as pick

    def pick(self, decision: Decision, logits: Tensor, k: int, scores: Tensor | None = None) -> list[str]:
        """The k best eligible options, best first (a stable order: ties go to the earlier);
        `scores` (one per option) replaces the logits' ranking."""
        scores = checked_scores(self, "scores" if scores is None else "input_scores", decision,
                                self.scores(decision, logits.detach().float().cpu()) if scores is None else scores)
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
