"""The strategy interface: one search step on any compiled supernet.

A strategy owns how the architecture gradient is formed; everything else is shared here:
the weights step (train batch, weights only), adding gamma * grad_A of the regularizer, and
the arch optimizer step. DARTS and MiLeNAS differ only in `arch_gradient`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from nasflow._plugins import lookup
from nasflow.search.config import SearchConfig
from nasflow.runs.distributed import DistContext, all_reduce_mean_, single
from nasflow.registry import Registry
from nasflow.search.regularizers import Regularizer
from nasflow.compile.supernet import Supernet
from nasflow.tasks.contract import Batch

LossFn = Callable[[nn.Module, Batch], tuple[Tensor, dict[str, float]]]


class Strategy(ABC):
    """Built with the task's loss, the regularizer (or None), the two optimizers and the run's
    config; `step` does one weights step and one arch step and returns what to log."""

    name: ClassVar[str] = ""
    # Set by distribute() in a run of several processes; a single process keeps these.
    _ddp: nn.Module | None = None
    _dist: DistContext = single()

    def __init__(self, loss_fn: LossFn, regularizer: Regularizer | None,
                 w_optimizer: torch.optim.Optimizer, a_optimizer: torch.optim.Optimizer,
                 config: SearchConfig) -> None:
        self.loss_fn = loss_fn
        self.regularizer = regularizer
        self.w_optimizer = w_optimizer
        self.a_optimizer = a_optimizer
        self.config = config

    def distribute(self, ddp_model: nn.Module, ctx: DistContext) -> None:
        """Run the weights step through `ddp_model` (DDP around the supernet, arch params
        ignored by it) so its reducer averages the weight gradients over ranks, and average
        the arch gradient over ranks, so alpha and beta stay identical on every rank."""
        self._ddp, self._dist = ddp_model, ctx

    def step(self, model: Supernet, train_batch: Batch, valid_batch: Batch) -> dict[str, float]:
        logs = self.weights_step(model, train_batch)
        logs.update(self.arch_step(model, train_batch, valid_batch))
        return logs

    def weights_step(self, model: Supernet, batch: Batch) -> dict[str, float]:
        """w <- w - lr * grad_w L_train; the loop's warm-up runs only this."""
        self.w_optimizer.zero_grad(set_to_none=True)
        # Through DDP when distributed: its backward hooks all-reduce the weight grads.
        loss, terms = self.loss_fn(self._ddp if self._ddp is not None else model, batch)
        # inputs=: accumulate into the weights only, never into alpha / beta.
        loss.backward(inputs=model.weights())
        self.w_optimizer.step()
        return _named("train", loss, terms)

    def arch_step(self, model: Supernet, train_batch: Batch, valid_batch: Batch) -> dict[str, float]:
        arch = model.arch_parameters()
        grads, logs = self.arch_gradient(model, train_batch, valid_batch)
        # Each rank saw its share of the batch: the mean over ranks is the global batch's
        # gradient. The regularizer's gradient (a function of A alone) is the same everywhere.
        all_reduce_mean_(grads, self._dist)
        if self.regularizer is not None and self.config.gamma > 0:
            penalty, details = self.regularizer(model)
            # The penalty depends on A only, so it enters the arch objective once.
            reg = torch.autograd.grad(self.config.gamma * penalty, arch, allow_unused=True)
            grads = [g if r is None else g + r for g, r in zip(grads, reg)]
            logs["reg/penalty"] = float(penalty.detach())
            logs.update({f"reg/{k}": v for k, v in details.items()})
        self.a_optimizer.zero_grad(set_to_none=True)
        for p, g in zip(arch, grads):
            p.grad = g
        self.a_optimizer.step()
        return logs

    @abstractmethod
    def arch_gradient(self, model: Supernet, train_batch: Batch,
                      valid_batch: Batch) -> tuple[list[Tensor], dict[str, float]]:
        """grad_A of the strategy's arch objective (regularizer excluded), one tensor per
        `model.arch_parameters()` entry, and what to log."""

    def grad_arch(self, model: Supernet, batch: Batch, split: str) -> tuple[list[Tensor], dict[str, float]]:
        """grad_A L(batch) by one forward and one autograd call; weights' .grad untouched."""
        loss, terms = self.loss_fn(model, batch)
        arch = model.arch_parameters()
        grads = torch.autograd.grad(loss, arch, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(arch, grads)], _named(split, loss, terms)


def _named(split: str, loss: Tensor, terms: dict[str, float]) -> dict[str, float]:
    return {f"{split}/loss": float(loss.detach()), **{f"{split}/{k}": float(v) for k, v in terms.items()}}


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: `@register_strategy("mine")` makes `--strategy mine` work."""

    def decorator(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        return STRATEGIES.add(name, cls)

    return decorator


def get_strategy(name: str) -> type[Strategy]:
    """By registered name, `nasflow.strategies` entry point, or 'module:Class'."""
    return lookup(STRATEGIES, "nasflow.strategies", name)
