"""Relaxations: how decision weights come from the architecture parameters on each forward.

The supernet asks its relaxation once per forward for one weight vector per decision label
(alpha: one weight per candidate op; beta: one per candidate input). Softmax is the default
(DARTS, MiLeNAS); a strategy installs its own (hard or soft Gumbel, Dirichlet samples, a
uniform single path) with `Supernet.relaxation = ...`.

A relaxation whose weights hold exact zeros may say so with `sparse = True`: mixed ops then
compute only the candidates whose weight is non-zero (a sampled single path costs one
candidate). `straight_through` makes such weights: one-hot in value, the soft weights'
gradient; `soft_at` too, with the kept candidates at their soft values.
"""
from __future__ import annotations

from typing import ClassVar, Protocol

import torch
from torch import Tensor

from nasflow.space.graph import Decision


class ArchParameters(Protocol):
    """What a relaxation reads (nasflow.compile.supernet.ArchParameters)."""

    decisions: dict[str, Decision]

    def logits(self, label: str) -> Tensor: ...

    def softmax(self) -> dict[str, Tensor]: ...


class Relaxation:
    """softmax(alpha), softmax(beta): every candidate weighted, every candidate computed."""

    # True: the weights may hold exact zeros and mixed ops skip those candidates.
    sparse: ClassVar[bool] = False

    def __call__(self, arch: ArchParameters) -> dict[str, Tensor]:
        return arch.softmax()


def straight_through(soft: Tensor, keep: Tensor | list[int]) -> Tensor:
    """Weights equal to 1 at the indices `keep` and exactly 0 elsewhere, whose gradient is
    the gradient of `soft` (the straight-through estimator): hard - soft.detach() + soft."""
    hard = torch.zeros_like(soft)
    hard[torch.as_tensor(keep, device=soft.device, dtype=torch.long)] = 1.0
    # -s + s is exactly 0 in floating point, so the zeros stay exact and can be skipped.
    return hard - soft.detach() + soft


def soft_at(soft: Tensor, keep: Tensor | list[int]) -> Tensor:
    """Weights equal to `soft` at the indices `keep` and exactly 0 elsewhere, whose gradient is
    the gradient of `soft`: the drawn candidates at their relaxed values."""
    at = torch.zeros_like(soft)
    index = torch.as_tensor(keep, device=soft.device, dtype=torch.long)
    at[index] = soft.detach()[index]
    # soft - soft.detach() is exactly 0: the zeros stay exact and can be skipped.
    return at + (soft - soft.detach())


def active_candidates(weights: Tensor) -> list[int]:
    """Indices of the non-zero weights (one host read of a short vector)."""
    return [i for i, w in enumerate(weights.detach().tolist()) if w != 0.0]
