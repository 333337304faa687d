"""Second-order DARTS (Liu et al., ICLR 2019, eq. 7-8): the unrolled hypergradient.

    w' = w - xi * grad_w L_train(w, A)                      (one virtual weights step)
    grad = grad_A L_val(w', A) - xi * grad^2_{A,w} L_train(w, A) . grad_w' L_val(w', A)

with the Hessian-vector product by central finite differences:

    grad^2_{A,w} L_train . v  ~  (grad_A L_train(w + R v, A) - grad_A L_train(w - R v, A)) / (2R),
    R = eps / ||v||.

Five forward/backward passes for the arch step (one virtual step, one valid, two perturbed,
plus the weights step), against first-order DARTS' one. The weights are restored exactly
after each virtual move; their .grad is never touched.
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from nasflow.compile.supernet import Supernet

from .base import Batch, _named, register_strategy
from .darts import Darts
from .options import StrategyOptions


class DARTS2Options(StrategyOptions):
    xi: float | None = Field(None, ge=0, description="virtual step size (default: the weights' learning rate)")
    eps: float = Field(0.01, gt=0, description="finite-difference step, divided by ||grad_w' L_val||")


@register_strategy("darts2")
class DARTS2(Darts):
    """Second-order DARTS: the unrolled hypergradient, Hessian-vector product by finite differences."""

    Options = DARTS2Options
    options: DARTS2Options

    def mixed_op(self) -> str:
        return "plain"

    @property
    def xi(self) -> float:
        if self.options.xi is not None:
            return self.options.xi
        # DARTS' xi is the weights optimizer's current lr (it follows a cosine schedule).
        return self.w_optimizer.param_groups[0]["lr"] if self.w_optimizer is not None else self.config.weights_optim.lr

    def step_cost(self) -> float:
        # the weights step, then grad_w L_train, grad L_val and the two finite-difference passes
        return 5.0

    def arch_gradient(self, model: Supernet, train_batch: Batch,
                      valid_batch: Batch) -> tuple[list[Tensor], dict[str, float]]:
        assert self.loss_fn is not None, "built without a loss"
        arch, weights = model.arch_parameters(), model.weights()
        saved = [p.detach().clone() for p in weights]
        xi = self.xi
        # w' = w - xi grad_w L_train(w, A)
        g_train = _grads(self.loss_fn(model, train_batch)[0], weights)
        _move(weights, saved, g_train, -xi)
        loss, terms = self.loss_fn(model, valid_batch)
        grads = _grads(loss, arch + weights)
        g_arch, v = grads[:len(arch)], grads[len(arch):]
        logs = _named("valid", loss, terms)
        norm = torch.sqrt(sum((g * g).sum() for g in v))
        if xi == 0 or float(norm) == 0.0:
            _restore(weights, saved)
            return g_arch, logs
        r = self.options.eps / norm
        _move(weights, saved, v, float(r))
        g_plus = _grads(self.loss_fn(model, train_batch)[0], arch)
        _move(weights, saved, v, -float(r))
        g_minus = _grads(self.loss_fn(model, train_batch)[0], arch)
        _restore(weights, saved)
        hvp = [(p - m) / (2 * r) for p, m in zip(g_plus, g_minus)]
        return [g - xi * h for g, h in zip(g_arch, hvp)], logs


def _grads(loss: Tensor, params: list[torch.nn.Parameter]) -> list[Tensor]:
    got = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, got)]


@torch.no_grad()
def _move(params: list[torch.nn.Parameter], base: list[Tensor], direction: list[Tensor], scale: float) -> None:
    """params <- base + scale * direction."""
    for p, b, d in zip(params, base, direction):
        p.copy_(b + scale * d)


@torch.no_grad()
def _restore(params: list[torch.nn.Parameter], base: list[Tensor]) -> None:
    for p, b in zip(params, base):
        p.copy_(b)
