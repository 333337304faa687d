"""GDAS (Dong & Yang, "Searching for a robust neural architecture in four GPU hours",
CVPR 2019): a hard Gumbel-softmax draw per decision on every forward.

Per choice node one candidate is drawn by Gumbel-max; per dense node that keeps k inputs, k
distinct inputs by Gumbel-top-k. The weights are one-hot (k-hot) in value, so the supernet
computes the drawn candidate only, and softmax((logits + g) / tau) in gradient (straight
through), so every arch parameter learns. tau is annealed linearly from tau_max to tau_min
over the search. The arch gradient is first-order DARTS' (grad_A L_val). The temperature and
the generator are the strategy's state: resume is exact, every rank draws alike.

The weights' learning rate falls by a cosine over the search (to `lr_min` of it), as GDAS
anneals SGD from 0.025 to 0.001 (AutoDL-Projects, configs/nas-benchmark/algos/GDAS.config).

In the arch step's forward the drawn op weighs its Gumbel-softmax value s_k, not 1
(`arch_value` "soft", the default; "hard" is GDAS's own forward). Why, traced per seed on the
planted test task (docs/strategies.md has the numbers): the drawn op's logit moves by the
loss's slope along its output, dL/dh_k = <dL/dout, o_k>, times s_k(1 - s_k) / tau. nasflow's
candidates end in no normalization, so the weights can scale a candidate's output: at h_k = 1,
once it fits, the slope is ~0 by their optimality plus a positive jitter term, while a partly
trained rival has a negative slope and a near-silent candidate one near 0. The hard estimator
rewards promise, not quality: the planted op led while it was learning, then its slope turned
positive and a half-trained conv_3x3 or a silent sep_conv overtook it in longer searches
(200 steps: 3 of 5 seeds). At h_k = s_k < 1 the loss is not stationary in the scale and the
slope adds what the candidate explains of the loss (5 of 5 at 100 and 200 steps). GDAS's own
spaces get that from a BatchNorm (affine off) at the end of their conv candidates. The
official NAS-Bench-201 code's zero-valued non-drawn weights in the node output only replace
dL/dh_k by dL/dh_k - sum(dL/dout): noise where no BatchNorm follows (measured worse).
"""
from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from nasflow.compile.relaxation import Relaxation, soft_at, straight_through
from nasflow.compile.supernet import ArchParameters, Supernet

from .base import Batch, register_strategy
from .darts import Darts
from .options import StrategyOptions
from .sampling import OwnGenerator


class GDASOptions(StrategyOptions):
    tau_max: float = Field(10.0, gt=0, description="Gumbel temperature at the first step")
    tau_min: float = Field(0.1, gt=0, description="Gumbel temperature at the last step")
    lr_min: float = Field(0.04, ge=0, le=1, description="the weights' learning rate falls by a cosine to this "
                          "fraction of the configured one at the last step (1: constant)")
    arch_value: Literal["soft", "hard"] = Field(
        "soft", description="the drawn op's weight in the arch step's forward: its Gumbel-softmax value "
        "(soft, so its slope sees how much of the loss it explains) or 1 (hard, GDAS's own forward)")


class HardGumbel(Relaxation):
    """Gumbel-top-k of the logits per decision (k = 1 for an op, the node's topk for inputs);
    k-hot in value, softmax((logits + g) / tau) in gradient. In the arch step's forward with
    arch_value "soft", a drawn op weighs its softmax value instead of 1 (inputs stay k-hot)."""

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
            soft = F.softmax(perturbed, dim=-1)
            at_soft = self.strategy.arch_pass and decision.kind == "alpha" and self.strategy.options.arch_value == "soft"
            out[label] = soft_at(soft, drawn) if at_soft else straight_through(soft, drawn)
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
        self.arch_pass = False  # True during the arch gradient's forward (arch_value)

    def mixed_op(self) -> str:
        return "plain"  # one candidate per forward: nothing to fuse

    def relaxation(self) -> Relaxation:
        return HardGumbel(self)

    def arch_gradient(self, model: Supernet, train_batch: Batch,
                      valid_batch: Batch) -> tuple[list[Tensor], dict[str, float]]:
        self.arch_pass = True
        try:
            return super().arch_gradient(model, train_batch, valid_batch)
        finally:
            self.arch_pass = False

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
