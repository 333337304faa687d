"""MiLeNAS mixed-level search (Shen et al., eq. 5-6):

    w <- w - lr * grad_w L_train
    A <- A - lr_A * (grad_A L_train + lambda * grad_A L_val)

Two autograd calls, no unrolling: the train loss keeps A fitting the data the weights see,
the valid loss keeps it from overfitting them.

Options (`--strategy-opt lambda=0.5`): `lambda` (alias of the field `lam`, default 1) and
`reuse_forward` (off by default). Before they were options they were SearchConfig fields;
old configs are migrated (nasflow.search.config.migrate_legacy_options).

`reuse_forward`: grad_A L_train is taken from the weights
step's own forward/backward, one backward with inputs = weights + arch, instead of a second
forward/backward after the update. It is therefore grad_A L_train at the weights *before*
their update (w_t, not w_{t+1}): a different, one-step-stale estimate, which saves one of
the three forward/backward passes of a step. grad_A L_val is still taken after the update.
"""
from __future__ import annotations

from pydantic import Field
from torch import Tensor

from nasflow.compile.supernet import Supernet

from .base import Batch, Strategy, _named, register_strategy
from .options import StrategyOptions


class MiLeNASOptions(StrategyOptions):
    lam: float = Field(1.0, alias="lambda", ge=0, description="weight of grad_A L_val")
    reuse_forward: bool = Field(False, description="grad_A L_train from the weights step's backward "
                                "(at the weights before their update): one forward/backward fewer")


@register_strategy("milenas")
class MiLeNAS(Strategy):
    """Mixed-level search: A <- A - lr_A * (grad_A L_train + lambda * grad_A L_val)."""

    Options = MiLeNASOptions
    options: MiLeNASOptions
    _reused: list[Tensor] | None = None  # grad_A L_train from the weights step (reuse_forward)

    def step_cost(self) -> float:
        # the weights step, grad_A L_train (unless reused from it) and grad_A L_val
        return 2.0 if self.options.reuse_forward else 3.0

    def step(self, model: Supernet, train_batch: Batch, valid_batch: Batch) -> dict[str, float]:
        if not self.options.reuse_forward:
            return super().step(model, train_batch, valid_batch)
        logs, self._reused = self.weights_step_with_arch_grad(model, train_batch)
        try:
            logs.update(self.arch_step(model, train_batch, valid_batch))
        finally:
            self._reused = None
        return logs

    def weights_step_with_arch_grad(self, model: Supernet, batch: Batch) -> tuple[dict[str, float], list[Tensor]]:
        """The weights step, whose one backward also gives grad_A L_train (at the weights
        before the step), returned apart; alpha / beta keep no .grad."""
        arch = model.arch_parameters()
        self.w_optimizer.zero_grad(set_to_none=True)
        for p in arch:
            p.grad = None
        # Through DDP when distributed, as in the base weights step.
        ddp = getattr(self, "_ddp", None)
        loss, terms = self.loss_fn(ddp if ddp is not None else model, batch)
        loss.backward(inputs=model.weights() + arch)
        grads = [p.grad if p.grad is not None else p.detach().new_zeros(p.shape) for p in arch]
        for p in arch:
            p.grad = None  # so the weights optimizer, and arch_step, see none
        self.clip_weight_grads(model)
        self.w_optimizer.step()
        logs = _named("train", loss, terms)
        logs["arch_train/loss"] = logs["train/loss"]
        return logs, grads

    def arch_gradient(self, model: Supernet, train_batch: Batch,
                      valid_batch: Batch) -> tuple[list[Tensor], dict[str, float]]:
        if self._reused is not None:
            g_train, logs = self._reused, {}
        else:  # grad_A L_train at the weights just updated
            g_train, logs = self.grad_arch(model, train_batch, "arch_train")
        g_valid, valid_logs = self.grad_arch(model, valid_batch, "valid")
        lam = self.options.lam
        logs.update(valid_logs)
        return [gt + lam * gv for gt, gv in zip(g_train, g_valid)], logs
