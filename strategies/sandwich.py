"""The sandwich rule (Yu et al., "BigNAS: Scaling Up Neural Architecture Search with Big
Single-Stage Models", ECCV 2020; Yu & Huang, "Universally Slimmable Networks", ICCV 2019):
train one supernet for every budget at once.

Each step trains the largest architecture (every value decision at its largest value), the
smallest (every value at its smallest) and `random` architectures drawn uniformly, in one
weights update (their gradients summed). Op and input decisions are drawn uniformly in each
of them, as SPOS draws them. With `distill` > 0 the largest architecture teaches the others
(BigNAS' in-place distillation): their loss is (1 - distill) * the task's loss + distill *
the mean squared difference between their output and the largest's, detached (for a
classifier that is logit matching, Ba & Caruana 2014; for an image, its pixels).

Only the drawn widths run (a one-hot relaxation: nasflow.compile.values' exact mode), so
a step costs about 2 + `random` single-path steps. On a space without value decisions there
is no largest or smallest: every architecture of the step is drawn (SPOS with 2 + `random`
paths per update). After the last step, SPOS's evolution
picks the architecture under the run's `--budget` (strategies/spos.py); `nasflow derive RUN
--budget ...` picks more from the same supernet, each scored with inherited weights.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from nasflow.compile.supernet import Supernet
from nasflow.tasks.contract import Batch

from .base import _named, register_strategy
from .evolution import Path, PathSpace
from .spos import SPOS, SPOSOptions


class SandwichOptions(SPOSOptions):
    random: int = Field(2, ge=0, description="random architectures per step, besides the largest and the smallest")
    distill: float = Field(0.0, ge=0, le=1, description="weight of the largest architecture's output as the "
                                                        "others' target (in-place distillation; 0: off)")


def extreme(space: PathSpace, largest: bool, g: torch.Generator) -> Path:
    """Every value decision at its largest (or smallest) value; op and input decisions drawn."""
    out = []
    for i, label in enumerate(space.labels):
        d = space.graph.decisions[label]
        if d.kind == "value":
            allowed = space.allowed[i]
            pick = max(allowed, key=lambda j: d.values[j]) if largest else min(allowed, key=lambda j: d.values[j])
            out.append((pick,))
        else:
            out.append(space.draw(i, g))
    return tuple(out)


@register_strategy("sandwich")
class Sandwich(SPOS):
    """BigNAS' sandwich rule on a supernet with value decisions, then SPOS's evolution."""

    Options = SandwichOptions
    options: SandwichOptions

    def step_cost(self) -> float:
        return 2.0 + self.options.random

    def weights_step(self, model: Supernet, batch: Batch) -> dict[str, float]:
        """One update from the largest, the smallest and `random` drawn architectures."""
        assert self.loss_fn is not None and self.w_optimizer is not None, "built without a loss or optimizer"
        assert self.path_relaxation is not None, "attach() builds the relaxation"
        space, g = self.path_relaxation.space, self.draws.generator
        paths = [extreme(space, True, g), extreme(space, False, g)]
        paths += [space.random(g) for _ in range(self.options.random)]
        self.w_optimizer.zero_grad(set_to_none=True)
        net = self._ddp if self._ddp is not None else model
        logs: dict[str, float] = {}
        teacher: Tensor | None = None
        try:
            for n, path in enumerate(paths):
                self.path_relaxation.fixed = path
                with _Outputs(model) as seen:
                    loss, terms = self.loss_fn(net, batch)
                if n == 0:
                    teacher = seen.output
                    logs.update(_named("train", loss, terms))
                elif self.options.distill > 0 and teacher is not None and seen.output is not None:
                    kd = F.mse_loss(seen.output, teacher.detach())
                    loss = (1 - self.options.distill) * loss + self.options.distill * kd
                    logs[f"train/distill_{'smallest' if n == 1 else 'random'}"] = float(kd.detach())
                if n == 1:
                    logs["train/loss_smallest"] = float(loss.detach())
                loss.backward(inputs=model.weights())
        finally:
            self.path_relaxation.fixed = None
        self.clip_weight_grads(model)
        self.w_optimizer.step()
        return logs


class _Outputs:
    """Keeps the supernet's last output while a block runs (the task calls the model itself)."""

    def __init__(self, model: Supernet) -> None:
        self.model, self.output = model, None

    def __enter__(self) -> _Outputs:
        self.handle = self.model.register_forward_hook(self._keep)
        return self

    def _keep(self, module: Any, args: Any, output: Any) -> None:
        self.output = output[0] if isinstance(output, tuple) else output

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()
