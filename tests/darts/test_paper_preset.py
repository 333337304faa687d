"""Retraining takes its optimizer and schedule from the task's preset: DARTS' SGD with
momentum and a cosine schedule (the classify task's paper preset)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasflow.spaces.darts.task import PRESETS
from nasflow.train.config import TrainConfig, preset_changes
from nasflow.train.loop import optimizer_and_schedule


def test_paper_preset_is_sgd_momentum_cosine():
    config = TrainConfig.model_validate({**preset_changes("paper", PRESETS["paper"]["train"]), "steps": 10})
    assert (config.optimizer, config.schedule, config.momentum) == ("sgd", "cosine", 0.9)
    assert config.optim.lr == 0.025 and config.optim.weight_decay == 3e-4
    model = nn.Linear(3, 2)
    opt, sched = optimizer_and_schedule(config, model)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    lrs = []
    for step in range(10):
        assert opt.param_groups[0]["lr"] == pytest.approx(config.lr_at(step))
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[5] == pytest.approx(0.025 * 0.5 * (1 + math.cos(math.pi * 5 / 10)))


def test_default_stays_adam_with_step_halving():
    config = TrainConfig(steps=10, lr_halve_every=4)
    opt, sched = optimizer_and_schedule(config, nn.Linear(3, 2))
    assert isinstance(opt, torch.optim.Adam) and isinstance(sched, torch.optim.lr_scheduler.StepLR)
    assert config.lr_at(4) == config.optim.lr / 2
