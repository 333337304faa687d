"""MiLeNAS mixed-level search (Shen et al., eq. 5-6):

    w <- w - lr * grad_w L_train
    A <- A - lr_A * (grad_A L_train + lambda * grad_A L_val)

Two autograd calls, no unrolling: the train loss keeps A fitting the data the weights see,
the valid loss keeps it from overfitting them.
"""
from __future__ import annotations

from torch import Tensor

from nasflow.supernet import Supernet

from .base import Batch, Strategy, register_strategy


@register_strategy("milenas")
class MiLeNAS(Strategy):
    def arch_gradient(self, model: Supernet, train_batch: Batch,
                      valid_batch: Batch) -> tuple[list[Tensor], dict[str, float]]:
        # grad_A L_train at the weights just updated; an option to reuse the weights step's
        # backward (grad_A at the weights before the update) would replace this first call.
        g_train, logs = self.grad_arch(model, train_batch, "arch_train")
        g_valid, valid_logs = self.grad_arch(model, valid_batch, "valid")
        lam = self.config.lam
        logs.update(valid_logs)
        return [gt + lam * gv for gt, gv in zip(g_train, g_valid)], logs
