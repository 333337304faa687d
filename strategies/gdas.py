"""GDAS (Dong & Yang, "Searching for a robust neural architecture in four GPU hours",
CVPR 2019): a hard Gumbel-softmax draw per decision on every forward.

Per choice node one candidate is drawn by Gumbel-max; per dense node that keeps k inputs, k
distinct inputs by Gumbel-top-k. The weights are one-hot (k-hot) in value, so the supernet
computes the drawn candidate only, and softmax((logits + g) / tau) in gradient (straight
through), so every arch parameter learns. tau is annealed linearly from tau_max to tau_min
over the search. The arch gradient is first-order DARTS' (grad_A L_val). The temperature and
the generator are the strategy's state: resume is exact, every rank draws alike.

The weights' learning rate falls by a cosine over the search (to `lr_min` of it; GDAS
anneals SGD from 0.025 to 0.001). This matters to what GDAS finds, not only to the weights:
the straight-through gradient a drawn candidate's weight gets is the loss's slope along that
candidate's output, and once its weights fit, that slope is the square of their remaining
error (positive: "shrink it"), which a constant learning rate keeps at its noise floor. The
best candidate, the one trained most, is pushed down by its own weight noise while candidates
whose outputs stay near zero get a slope near zero; with a constant learning rate a long
search drifts to them (on the planted test task: 200 steps recovered the op in 0 of 5 seeds).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from nasflow.compile.relaxation import Relaxation, straight_through
from nasflow.compile.supernet import ArchParameters

from .base import register_strategy
from .darts import Darts
from .options import StrategyOptions
from .sampling import OwnGenerator


class GDASOptions(StrategyOptions):
    tau_max: float = Field(10.0, gt=0, description="Gumbel temperature at the first step")
    tau_min: float = Field(0.1, gt=0, description="Gumbel temperature at the last step")
    lr_min: float = Field(0.04, ge=0, le=1, description="the weights' learning rate falls by a cosine to this "
                          "fraction of the configured one at the last step (1: constant)")


class HardGumbel(Relaxation):
    """Gumbel-top-k of the logits per decision (k = 1 for an op, the node's topk for inputs);
    k-hot in value, softmax((logits + g) / tau) in gradient."""

    sparse = True

    def __init__(self, strategy: GDAS) -> None:
        self.strategy = strategy

    def __call__(self, arch: ArchParameters) -> dict[str, Tensor]:
        out = {}
        for label, decision in arch.decisions.items():
            logits = arch.logits(label)
            perturbed = (logits + self.strategy.draws.gumbel(logits)) / self.strategy.tau
            k = 1 if decision.kind == "alpha" else decision.topk
            drawn = torch.topk(perturbed.detach(), k).indices
            out[label] = straight_through(F.softmax(perturbed, dim=-1), drawn)
        return out


@register_strategy("gdas")
class GDAS(Darts):
    """GDAS: one hard Gumbel-softmax draw per decision, only it computed, tau annealed."""

    Options = GDASOptions
    options: GDASOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tau = self.options.tau_max
        self.draws = OwnGenerator(self.config.seed)

    def mixed_op(self) -> str:
        return "plain"  # one candidate per forward: nothing to fuse

    def relaxation(self) -> Relaxation:
        return HardGumbel(self)

    def on_step(self, step: int, total: int) -> None:
        lo, hi = self.options.tau_min, self.options.tau_max
        t = min(step / max(total - 1, 1), 1.0)
        self.tau = lo * t + hi * (1 - t)  # exactly tau_max at the first step, tau_min at the last
        if self.w_optimizer is not None:
            # A function of the step alone (from each group's initial lr, which the optimizer's
            # state keeps): a resumed run sets what an uninterrupted one had.
            r = self.options.lr_min
            scale = r + (1 - r) * 0.5 * (1 + math.cos(math.pi * t))
            for group in self.w_optimizer.param_groups:
                group["lr"] = group.setdefault("initial_lr", group["lr"]) * scale

    def state_dict(self) -> dict[str, Any]:
        return {"tau": self.tau, **self.draws.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tau = float(state["tau"])
        self.draws.load_state_dict(state)
