"""Relaxations: how decision weights come from the architecture parameters on each forward.

The supernet asks its relaxation once per forward for one weight vector per decision label
(alpha: one weight per candidate op; beta: one per candidate input). Softmax is the default
(DARTS, MiLeNAS); a strategy installs its own (hard or soft Gumbel, Dirichlet samples, a
uniform single path) with `Supernet.relaxation = ...`.

A relaxation whose weights hold exact zeros may say so with `sparse = True`: mixed ops then
compute only the candidates whose weight is non-zero (a sampled single path costs one
candidate). `straight_through` makes such weights: one-hot in value, the soft weights'
gradient; `soft_at` too, with the kept candidates at their soft values.

What tables, logs and plots show of a decision is the relaxation's own weights function,
`decision_weights(arch)` (named `weights_name`): softmax by default, a sigmoid relaxation's
sigmoid, a sampler's expectation (its draws are random), so a strategy whose weights are
not softmax(alpha) is shown as it runs.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from nasflow.errors import hook_error, shown
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
    # The name of decision_weights' function, for titles and labels ("sigmoid(alpha)").
    weights_name: ClassVar[str] = "softmax"

    def __call__(self, arch: ArchParameters) -> dict[str, Tensor]:
        return arch.softmax()

    def decision_weights(self, arch: ArchParameters) -> dict[str, Tensor]:
        """The weights each decision stands at, as tables and logs show them: deterministic
        (a sampling relaxation shows its distribution, not one draw). Softmax by default; a
        relaxation whose weights are another function of the logits (a sigmoid) overrides it
        with that function, and `weights_name` with its name."""
        return arch.softmax()


def checked_weights(relaxation: Relaxation, decisions: Mapping[str, Decision], value: Any) -> dict[str, Tensor]:
    """What `relaxation(arch)` returned when it is {label: a 1-D tensor, one weight per option}
    for every decision; else one HookError naming the relaxation, the label and what came back."""
    hook = f"relaxation {type(relaxation).__name__}"
    expected = "a dict {decision label: 1-D tensor with one weight per option}"
    if not isinstance(value, dict):
        raise hook_error(hook, expected, value)
    for label, d in decisions.items():
        w = value.get(label)
        if not isinstance(w, Tensor) or tuple(w.shape) != (len(d.options),):
            got = f"shape {tuple(w.shape)}" if isinstance(w, Tensor) else shown(w)
            raise hook_error(hook, expected, value, f"'{label}' has {len(d.options)} options, its weights are {got}")
    return value


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
