"""DrNAS: decision weights are reparameterised Dirichlet samples with learned concentration
from the strategy's own generator; the regularizer enters the arch gradient; planted
structure recovered; exact resume."""
from __future__ import annotations

import pytest
import torch
from strategy_checks import assert_resume_is_exact, recovered, recoveries
from synthetic import PlantedTask, fast_config, planted_space

from nasflow.compile.supernet import compile_graph
from nasflow.space.graph import build_graph
from nasflow.strategies import DrNAS
from strategies.drnas import concentration


def _attached(**options):
    strategy = DrNAS(PlantedTask(keep=1.0).loss, config=fast_config(strategy="drnas", strategy_options=options))
    torch.manual_seed(0)
    model = compile_graph(build_graph(planted_space()), mixed_op=strategy.mixed_op())
    strategy.attach(model)
    return strategy, model


def test_weights_are_dirichlet_samples_with_a_reparameterised_gradient():
    strategy, model = _attached()
    with torch.no_grad():
        model.arch.logits("m").copy_(torch.tensor([0.0, 0.0, 3.0, 0.0, 0.0, 0.0]))
    draws = torch.stack([model.relaxation(model.arch)["m"].detach() for _ in range(4000)])
    assert torch.allclose(draws.sum(1), torch.ones(4000, dtype=draws.dtype))
    c = concentration(model.arch.logits("m").detach())
    torch.testing.assert_close(draws.mean(0), c / c.sum(), atol=0.01, rtol=0)  # E[x] = c / sum(c)
    # The implicit gradient: d E[x_2] / d logits_2 > 0, checked by autograd on the sample mean.
    mean2 = torch.stack([model.relaxation(model.arch)["m"][2] for _ in range(200)]).mean()
    grad = torch.autograd.grad(mean2, model.arch.logits("m"))[0]
    assert grad[2] > 0 and bool((grad[[0, 1, 3, 4, 5]] < 0).all())


@pytest.mark.parametrize("reg", ["l2", "kl"])
def test_the_regularizer_enters_the_arch_gradient(reg):
    batches = [PlantedTask().sample(4, torch.Generator().manual_seed(s)) for s in (1, 2)]
    grads = {}
    for scale in (0.0, 1.0):
        strategy, model = _attached(reg=reg, reg_scale=scale)
        grads[scale], logs = strategy.arch_gradient(model, *batches)
        assert logs["drnas/reg"] == pytest.approx(float(strategy.penalty(model).detach()))
    assert any(not torch.equal(a, b) for a, b in zip(grads[0.0], grads[1.0]))


def test_recovers_the_planted_op_and_edges(tmp_path):
    found = recoveries(tmp_path, "drnas")
    assert recovered(found) >= 4, found


def test_resume_is_exact(tmp_path):
    state = assert_resume_is_exact(tmp_path, "drnas")
    assert "generator" in state
