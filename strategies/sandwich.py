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

With a `--budget` (and `focus`, the default) every architecture of a step is drawn under
it: the largest is the widest under the budget for its drawn ops (value decisions lowered one
step at a time, the step saving most first), the random ones are uniform among those under it
(rejection), so the weights train where the evolution will look rather than at widths the
budget rules out (at params=56k, DLSR's 48-channel largest is 75x over). `focus=false` trains
every budget at once, for `nasflow derive RUN --budget ...` to pick from later.

Only the drawn widths run (a one-hot relaxation: nasflow.compile.values' exact mode), so
a step costs about 2 + `random` single-path steps. On a space without value decisions there
is no largest or smallest: every architecture of the step is drawn (SPOS with 2 + `random`
paths per update). After the last step, SPOS's evolution
picks the architecture under the run's `--budget` (strategies/spos.py); `nasflow derive RUN
--budget ...` picks more from the same supernet, each scored with inherited weights.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from nasflow.compile.supernet import Supernet
from nasflow.tasks.contract import Batch

from .base import _named, register_strategy
from .evolution import TRIES, Path, PathSpace
from .spos import SPOS, SPOSOptions, check_budget, cost_model


class SandwichOptions(SPOSOptions):
    random: int = Field(2, ge=0, description="random architectures per step, besides the largest and the smallest")
    distill: float = Field(0.0, ge=0, le=1, description="weight of the largest architecture's output as the "
                                                        "others' target (in-place distillation; 0: off)")
    focus: bool = Field(True, description="with --budget, draw only architectures under it (false: every "
                                          "architecture, for budgets picked later by derive --budget)")


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


class UnderBudget:
    """Draws of the sandwich's architectures restricted to those whose cost is under `limit`."""

    def __init__(self, space: PathSpace, cost: Callable[[Path], float], limit: float, fallback: Path) -> None:
        self.space, self.cost, self.limit, self.fallback = space, cost, limit, fallback
        self.values = [i for i, label in enumerate(space.labels) if space.graph.decisions[label].kind == "value"]

    def largest(self, g: torch.Generator) -> Path:
        for _ in range(TRIES):
            path = self.lowered(extreme(self.space, True, g))
            if path is not None:
                return path
        return self.fallback

    def smallest(self, g: torch.Generator) -> Path:
        return self._first_under(lambda: extreme(self.space, False, g))

    def random(self, g: torch.Generator) -> Path:
        return self._first_under(lambda: self.space.random(g))

    def _first_under(self, draw: Callable[[], Path]) -> Path:
        for _ in range(TRIES):
            path = draw()
            if self.cost(path) <= self.limit:
                return path
        return self.fallback  # a budget so tight that draws rarely meet it: the cheapest path

    def lowered(self, path: Path) -> Path | None:
        """`path` with its value decisions lowered until under the limit, each time the one
        whose next smaller value saves most; None when even the smallest values are over."""
        cost = self.cost(path)
        while cost > self.limit:
            steps = []
            for i in self.values:
                d, allowed = self.space.graph.decisions[self.space.labels[i]], self.space.allowed[i]
                smaller = [j for j in allowed if d.values[j] < d.values[path[i][0]]]
                if smaller:
                    step = path[:i] + ((max(smaller, key=lambda j: d.values[j]),),) + path[i + 1:]
                    steps.append((self.cost(step), step))
            if not steps:
                return None
            cost, path = min(steps, key=lambda s: s[0])
        return path


@register_strategy("sandwich")
class Sandwich(SPOS):
    """BigNAS' sandwich rule on a supernet with value decisions, then SPOS's evolution."""

    Options = SandwichOptions
    options: SandwichOptions

    def attach(self, model: Supernet) -> None:
        super().attach(model)
        assert self.path_relaxation is not None
        self.under: UnderBudget | None = None
        if self.options.focus and self.config.budget is not None:
            space = self.path_relaxation.space
            budget, costs = cost_model(self.config, model.graph)
            cheapest = check_budget(space, costs, budget, self.config.budget)  # refused now, not after training
            self.under = UnderBudget(space, lambda p: costs.of_genotype(model.graph, space.genotype(p)),
                                     budget.limit, cheapest)

    def step_cost(self) -> float:
        return 2.0 + self.options.random

    def draw_paths(self) -> list[Path]:
        """The step's architectures: the largest, the smallest, then `random` drawn ones."""
        assert self.path_relaxation is not None
        space, g = self.path_relaxation.space, self.draws.generator
        if self.under is not None:
            return [self.under.largest(g), self.under.smallest(g)] + [self.under.random(g)
                                                                     for _ in range(self.options.random)]
        return [extreme(space, True, g), extreme(space, False, g)] + [space.random(g)
                                                                       for _ in range(self.options.random)]

    def weights_step(self, model: Supernet, batch: Batch) -> dict[str, float]:
        """One update from the largest, the smallest and `random` drawn architectures."""
        assert self.loss_fn is not None and self.w_optimizer is not None, "built without a loss or optimizer"
        assert self.path_relaxation is not None, "attach() builds the relaxation"
        paths = self.draw_paths()
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
