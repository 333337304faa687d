"""Strategies: the registry, the arch gradient each forms (checked against autograd by
hand), weights and arch kept apart, the regularizer entering the arch step, and a strategy
registered from Python used by name from the library and the command line."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from nasflow.strategies import (
    STRATEGIES,
    Darts,
    MiLeNAS,
    Strategy,
    get_strategy,
    register_strategy,
)
from synthetic import PlantedTask, fast_config, planted_space, register_task
from typer.testing import CliRunner

from nasflow.space.graph import build_graph
from nasflow.registry import UnknownNameError
from nasflow.search.regularizers import get_regularizer
from nasflow.search.loop import run_search
from nasflow.compile.supernet import Supernet, compile_graph


def _mse(model, batch):
    inputs, target = batch
    loss = F.mse_loss(model(**inputs), target)
    return loss, {}


def _setup(name: str, gamma: float = 0.0, lam: float = 1.0, sgd: bool = False):
    torch.manual_seed(0)
    graph = build_graph(planted_space())
    model = compile_graph(graph)
    opt = (lambda ps: torch.optim.SGD(ps, lr=1.0)) if sgd else (lambda ps: torch.optim.Adam(ps, lr=1e-2))
    regularizer = get_regularizer("params")(graph)
    strategy = get_strategy(name)(_mse, regularizer, opt(model.weights()), opt(model.arch_parameters()),
                                  fast_config(strategy=name, gamma=gamma, lam=lam))
    task = PlantedTask()
    g = torch.Generator().manual_seed(5)
    return model, strategy, task.sample(4, g), task.sample(4, g)


def _grad_arch(model: Supernet, batch) -> list[torch.Tensor]:
    return list(torch.autograd.grad(_mse(model, batch)[0], model.arch_parameters()))


def test_builtin_strategies_are_registered():
    assert {"darts", "milenas"} <= set(STRATEGIES.names())
    assert get_strategy("darts") is Darts and get_strategy("milenas") is MiLeNAS
    assert get_strategy("nasflow.strategies.milenas:MiLeNAS") is MiLeNAS  # module:Class


def test_unknown_strategy_suggests_close_names(tmp_path):
    with pytest.raises(UnknownNameError, match=r"unknown strategy 'milenaz'; did you mean 'milenas'\?"):
        get_strategy("milenaz")
    with pytest.raises(UnknownNameError, match="did you mean 'darts'"):
        run_search(fast_config(strategy="dart"), tmp_path / "run", space=planted_space(), task=PlantedTask())
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_darts_arch_gradient_is_grad_of_valid_loss():
    model, strategy, train, valid = _setup("darts")
    grads, logs = strategy.arch_gradient(model, train, valid)
    for got, want in zip(grads, _grad_arch(model, valid)):
        torch.testing.assert_close(got, want)
    assert "valid/loss" in logs


@pytest.mark.parametrize("lam", [1.0, 0.25])
def test_milenas_arch_gradient_is_train_plus_lambda_valid(lam):
    model, strategy, train, valid = _setup("milenas", lam=lam)
    grads, logs = strategy.arch_gradient(model, train, valid)
    want = [gt + lam * gv for gt, gv in zip(_grad_arch(model, train), _grad_arch(model, valid))]
    for got, w in zip(grads, want):
        torch.testing.assert_close(got, w)
        assert got.abs().sum() > 0
    assert {"arch_train/loss", "valid/loss"} <= set(logs)


ARCH_LEARNERS = [n for n in STRATEGIES.names() if STRATEGIES.get(n).learns_arch]  # not SPOS: no arch step


@pytest.mark.parametrize("name", ARCH_LEARNERS)
def test_weights_step_and_arch_step_keep_to_their_parameters(name):
    model, strategy, train, valid = _setup(name)
    arch0 = [p.detach().clone() for p in model.arch_parameters()]
    weights0 = [p.detach().clone() for p in model.weights()]
    strategy.weights_step(model, train)
    assert all(torch.equal(a, p) and p.grad is None for a, p in zip(arch0, model.arch_parameters()))
    assert any(not torch.equal(w, p) for w, p in zip(weights0, model.weights()))
    weights1 = [p.detach().clone() for p in model.weights()]
    grads_before = [None if p.grad is None else p.grad.clone() for p in model.weights()]
    strategy.arch_step(model, train, valid)
    assert all(torch.equal(w, p) for w, p in zip(weights1, model.weights()))
    assert all(torch.equal(a, p.grad) if a is not None else p.grad is None
               for a, p in zip(grads_before, model.weights()))
    assert all(not torch.equal(a, p) for a, p in zip(arch0, model.arch_parameters()))


@pytest.mark.parametrize("name", ARCH_LEARNERS)
def test_regularizer_enters_the_arch_step_weighted_by_gamma(name):
    gamma = 0.5
    model, strategy, train, valid = _setup(name, gamma=gamma, sgd=True)  # SGD lr 1: update = -grad
    before = [p.detach().clone() for p in model.arch_parameters()]
    grads, _ = strategy.arch_gradient(model, train, valid)
    reg = torch.autograd.grad(strategy.regularizer(model)[0], model.arch_parameters(), allow_unused=True)
    logs = strategy.arch_step(model, train, valid)
    for b, p, g, r in zip(before, model.arch_parameters(), grads, reg):
        torch.testing.assert_close(b - p.detach(), g + (0 if r is None else gamma * r))
    assert logs["reg/penalty"] > 0 and "reg/params/m" in logs


class Counting(Strategy):
    """A custom strategy: DARTS' gradient, counting its calls."""

    calls = 0

    def arch_gradient(self, model, train_batch, valid_batch):
        type(self).calls += 1
        return self.grad_arch(model, valid_batch, "valid")


def _register_counting() -> str:
    if "test-counting" not in STRATEGIES:
        register_strategy("test-counting")(Counting)
    return "test-counting"


def test_strategy_registered_from_python_is_found_by_name(tmp_path):
    name = _register_counting()
    assert get_strategy(name) is Counting and Counting.name == name
    Counting.calls = 0
    result = run_search(fast_config(strategy=name, steps=5, warmup=2), tmp_path / "run",
                        space=planted_space(), task=PlantedTask())
    assert result.finished and Counting.calls == 3


def test_strategy_registered_from_python_works_on_the_command_line(tmp_path):
    from nasflow.cli.main import app

    name = _register_counting()
    space = tmp_path / "planted.yaml"
    planted_space(task=register_task()).to_yaml(space)
    Counting.calls = 0
    result = CliRunner().invoke(app, ["search", str(space), "--strategy", name, "--steps", "4", "--warmup", "1",
                                      "--batch", "2", "--out", str(tmp_path / "run"), "--quiet",
                                      "--levers", "given"])  # `auto` would time the levers with extra steps
    assert result.exit_code == 0, result.output
    assert Counting.calls == 3


def test_duplicate_strategy_name_is_refused():
    with pytest.raises(Exception, match="strategy 'darts' is already registered"):
        register_strategy("darts")(Counting)
