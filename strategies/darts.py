"""First-order DARTS: the arch gradient is grad_A L_val at the current weights (no unrolling).

Option `arch_first` (off by default): the reference code's order (quark0/darts,
cnn/train_search.py: `architect.step(...)` before the weights step), the arch step at the
weights before their update and the weights step under the updated alpha. nasflow's default
runs the weights step first, as every strategy here does, so warm-up and search steps share
one order; tests/test_step_fidelity.py matches the reference's step with `arch_first=true`.
"""
from __future__ import annotations

from pydantic import Field
from torch import Tensor

from nasflow.compile.supernet import Supernet

from .base import Batch, Strategy, register_strategy
from .options import StrategyOptions


class DartsOptions(StrategyOptions):
    arch_first: bool = Field(False, description="the arch step before the weights step, as the "
                             "reference code (quark0/darts) orders them")


@register_strategy("darts")
class Darts(Strategy):
    """First-order DARTS: a weights step on the train batch, then A <- A - lr_A * grad_A L_val."""

    Options = DartsOptions
    options: DartsOptions

    def step(self, model: Supernet, train_batch: Batch, valid_batch: Batch) -> dict[str, float]:
        # Subclasses (darts2, gdas, pcdarts, drnas) have options of their own, without it.
        if not getattr(self.options, "arch_first", False):
            return super().step(model, train_batch, valid_batch)
        logs = self.arch_step(model, train_batch, valid_batch)
        logs.update(self.weights_step(model, train_batch))
        return logs

    def arch_gradient(self, model: Supernet, train_batch: Batch,
                      valid_batch: Batch) -> tuple[list[Tensor], dict[str, float]]:
        return self.grad_arch(model, valid_batch, "valid")
