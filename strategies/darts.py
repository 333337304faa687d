"""First-order DARTS: the arch gradient is grad_A L_val at the current weights (no unrolling)."""
from __future__ import annotations

from torch import Tensor

from nasflow.compile.supernet import Supernet

from .base import Batch, Strategy, register_strategy


@register_strategy("darts")
class Darts(Strategy):
    """First-order DARTS: a weights step on the train batch, then A <- A - lr_A * grad_A L_val."""

    def arch_gradient(self, model: Supernet, train_batch: Batch,
                      valid_batch: Batch) -> tuple[list[Tensor], dict[str, float]]:
        return self.grad_arch(model, valid_batch, "valid")
