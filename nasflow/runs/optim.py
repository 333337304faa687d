"""Optimizers and learning-rate schedules by name, shared by the search's weights optimizer
and the retraining loop, so a task's preset names them the same way for both.

    opt = make_optimizer(params, "sgd", lr=0.025, momentum=0.9, weight_decay=3e-4)
    sched = make_schedule(opt, "cosine", steps=1000, lr_min=1e-3)   # None for "constant"

Schedules are stepped once per step; their state goes in checkpoints (exact resume).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn

OptimizerName = Literal["adam", "sgd"]
ScheduleName = Literal["constant", "step", "cosine"]


def make_optimizer(params: Iterable[nn.Parameter], name: OptimizerName, *, lr: float,
                   betas: tuple[float, float] = (0.9, 0.999), momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam (lr, betas, weight_decay) or SGD with momentum (lr, momentum, weight_decay)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)


def make_schedule(opt: torch.optim.Optimizer, name: ScheduleName, *, steps: int, lr_min: float = 0.0,
                  halve_every: int = 1) -> Any:
    """None for "constant"; "step": the lr halved every `halve_every` steps; "cosine": from
    the optimizer's lr to `lr_min` over `steps` (DARTS' CosineAnnealingLR)."""
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr_min)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=halve_every, gamma=0.5)
    return None
