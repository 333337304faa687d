"""DrNAS (Chen et al., "DrNAS: Dirichlet Neural Architecture Search", ICLR 2021).

Every decision's weights are a sample from a Dirichlet whose concentration is learned:
beta = elu(logits) + 1 > 0, weights ~ Dir(beta), drawn with the reparameterised (implicit)
gradient, so d weights / d beta exists and the arch gradient is grad_A of E[L_val]'s
one-sample estimate. A regularizer keeps the concentrations in check: `l2` adds
reg_scale * sum(beta^2), `kl` adds reg_scale * KL(Dir(beta) || Dir(prior)). Samples come from
the strategy's own generator (its state): exact resume, the same draws on every rank.
Derivation ranks options by the Dirichlet's mean beta / sum(beta).
"""
from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.distributions import Dirichlet, kl_divergence

from nasflow.compile.relaxation import Relaxation
from nasflow.compile.supernet import ArchParameters, Supernet
from nasflow.derive.rule import DerivationRule
from nasflow.space.graph import Decision

from .base import Batch, _named, register_strategy
from .darts import Darts
from .options import StrategyOptions
from .sampling import OwnGenerator


class DrNASOptions(StrategyOptions):
    reg: Literal["l2", "kl"] = Field("l2", description="regularizer of the concentrations: l2 or kl (to a Dirichlet prior)")
    reg_scale: float = Field(1e-3, ge=0, description="weight of the regularizer in the arch loss")
    prior: float = Field(1.0, gt=0, description="the symmetric Dirichlet prior's concentration (reg=kl)")


def concentration(logits: Tensor) -> Tensor:
    return F.elu(logits) + 1.0


class _DirichletSample(torch.autograd.Function):
    """x ~ Dir(c) from a given generator, with the implicit reparameterisation gradient
    (as torch.distributions.Dirichlet.rsample, which cannot take a generator)."""

    @staticmethod
    def forward(ctx: Any, c: Tensor, generator: torch.Generator) -> Tensor:  # type: ignore[override]
        x = torch._sample_dirichlet(c.detach().cpu().double(), generator=generator).to(c.device, c.dtype)
        ctx.save_for_backward(x, c)
        return x

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        x, c = ctx.saved_tensors
        total = c.sum(-1, True).expand_as(c)
        return torch._dirichlet_grad(x, c, total) * (grad - (x * grad).sum(-1, True)), None


class DirichletSamples(Relaxation):
    """weights ~ Dir(elu(logits) + 1) per decision, every candidate weighted."""

    def __init__(self, strategy: DrNAS) -> None:
        self.strategy = strategy

    def __call__(self, arch: ArchParameters) -> dict[str, Tensor]:
        g = self.strategy.draws.generator
        return {label: _DirichletSample.apply(concentration(arch.logits(label)), g) for label in arch.decisions}


class DirichletMean(DerivationRule):
    """Rank by the Dirichlet's mean (the same order as the logits: elu + 1 is increasing)."""

    def scores(self, decision: Decision, logits: Tensor) -> Tensor:
        c = concentration(logits)
        return c / c.sum()


@register_strategy("drnas")
class DrNAS(Darts):
    """DrNAS: decision weights sampled from a Dirichlet with learned concentration, regularized."""

    Options = DrNASOptions
    options: DrNASOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.draws = OwnGenerator(self.config.seed)

    def relaxation(self) -> Relaxation:
        return DirichletSamples(self)

    def derivation_rule(self) -> DerivationRule:
        return DirichletMean()

    def penalty(self, model: Supernet) -> Tensor:
        terms = []
        for label in model.arch.decisions:
            c = concentration(model.arch.logits(label))
            if self.options.reg == "l2":
                terms.append((c * c).sum())
            else:
                terms.append(kl_divergence(Dirichlet(c), Dirichlet(torch.full_like(c, self.options.prior))))
        return self.options.reg_scale * torch.stack(terms).sum()

    def arch_gradient(self, model: Supernet, train_batch: Batch,
                      valid_batch: Batch) -> tuple[list[Tensor], dict[str, float]]:
        assert self.loss_fn is not None, "built without a loss"
        loss, terms = self.loss_fn(model, valid_batch)
        reg = self.penalty(model)
        arch = model.arch_parameters()
        grads = torch.autograd.grad(loss + reg, arch, allow_unused=True)
        logs = _named("valid", loss, terms)
        logs["drnas/reg"] = float(reg.detach())
        return [torch.zeros_like(p) if g is None else g for p, g in zip(arch, grads)], logs

    def state_dict(self) -> dict[str, Any]:
        return self.draws.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.draws.load_state_dict(state)
