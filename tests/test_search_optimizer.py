"""The search's weights optimizer and schedule come from the config (a task's preset): Adam
at a constant lr by default (DLSR's search, unchanged), SGD with momentum and a cosine
schedule for DARTS; the schedule's position is checkpointed, so a resumed run is exact."""
from __future__ import annotations

import math

import pytest
import torch
from synthetic import PlantedTask, fast_config, planted_space

from nasflow.compile.supernet import compile_graph
from nasflow.runs.checkpoint import load_checkpoint
from nasflow.search.config import SearchConfig
from nasflow.search.loop import run_search
from nasflow.search.run_dir import RunDir
from nasflow.space.graph import build_graph
from nasflow.search.loop import strategy_class
from nasflow.tasks.presets import preset_section

SGD = dict(weights_optimizer="sgd", weights_momentum=0.9, weights_schedule="cosine", weights_lr_min=1e-3)


def _attached(config: SearchConfig):
    strategy = strategy_class(config)(None, None, None, None, config)
    strategy.attach(compile_graph(build_graph(planted_space())))
    return strategy


def test_default_is_adam_at_a_constant_lr():
    strategy = _attached(fast_config())
    assert type(strategy.w_optimizer) is torch.optim.Adam
    assert strategy.schedule(strategy.w_optimizer) is None


def test_sgd_with_momentum_and_cosine_to_lr_min():
    config = fast_config(steps=10, warmup=0, weights_optim={"lr": 0.05, "weight_decay": 3e-4}, **SGD)
    strategy = _attached(config)
    opt = strategy.w_optimizer
    assert type(opt) is torch.optim.SGD
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.9, 3e-4)
    assert type(strategy.a_optimizer) is torch.optim.Adam  # the arch keeps Adam
    sched = strategy.schedule(opt)
    lrs = []
    for _ in range(10):
        opt.step()
        sched.step()
        lrs.append(group["lr"])
    expect = [1e-3 + (0.05 - 1e-3) * 0.5 * (1 + math.cos(math.pi * t / 10)) for t in range(1, 11)]
    assert lrs == pytest.approx(expect)


def test_classify_paper_preset_searches_with_darts_optimizers():
    _, section = preset_section("classify", "paper", "search")
    config = SearchConfig.build({**section, "device": "cpu"})
    assert (config.weights_optimizer, config.weights_schedule) == ("sgd", "cosine")
    assert (config.weights_optim.lr, config.weights_momentum, config.weights_optim.weight_decay,
            config.weights_lr_min) == (0.025, 0.9, 3e-4, 1e-3)
    assert (config.arch_optim.lr, config.arch_optim.betas, config.arch_optim.weight_decay) == (3e-4, (0.5, 0.999), 1e-3)


@pytest.mark.parametrize("strategy", ["darts", "milenas"])
def test_sgd_cosine_search_resumes_exactly(tmp_path, strategy):
    config = fast_config(strategy=strategy, steps=30, warmup=5, checkpoint_every=7,
                         weights_optim={"lr": 0.05, "weight_decay": 3e-4}, **SGD)
    run_search(config, tmp_path / "a", space=planted_space(), task=PlantedTask())
    stopped = run_search(config, tmp_path / "b", space=planted_space(), task=PlantedTask(), stop_at=12)
    assert stopped.step == 12
    run_search(config, tmp_path / "b", task=PlantedTask(), resume=True)
    (a, sa), (b, sb) = (load_checkpoint(RunDir(tmp_path / r).checkpoint_path) for r in "ab")
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert sa["sched_weights"] == sb["sched_weights"] and sa["sched_weights"]["last_epoch"] == 30
    # the schedule moved the weights differently from a constant lr
    constant = run_search(config.model_copy(update={"weights_schedule": "constant"}), tmp_path / "c",
                          space=planted_space(), task=PlantedTask())
    assert constant.softmax != run_search(config, tmp_path / "d", space=planted_space(), task=PlantedTask()).softmax
