"""Second-order DARTS: the finite-difference hypergradient equals the explicit unrolled
gradient (double backward through the virtual step) on a tiny space; the weights come back
exactly; planted structure recovered; exact resume."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from strategy_checks import assert_resume_is_exact, recovered, recoveries
from synthetic import PlantedTask, fast_config, planted_space
from torch.func import functional_call

from nasflow.compile.supernet import compile_graph
from nasflow.space.graph import build_graph
from nasflow.strategies import DARTS2

TINY = ["conv_1x1", "conv_3x3", "conv_5x5"]  # no BatchNorm: a pure function of (w, A)


def _mse(model, batch):
    inputs, target = batch
    loss = F.mse_loss(model(**inputs), target)
    return loss, {}


def test_hypergradient_equals_the_explicit_unrolled_gradient():
    torch.manual_seed(0)
    model = compile_graph(build_graph(planted_space(2, candidates=TINY))).double()
    with torch.no_grad():
        for p in model.arch_parameters():
            p.normal_()  # away from the uniform start, so every term matters
    task = PlantedTask(channels=2, size=5)
    train, valid = (tuple(_double(t) for t in task.sample(3, torch.Generator().manual_seed(s))) for s in (1, 2))
    xi = 0.05
    strategy = DARTS2(_mse, config=fast_config(strategy="darts2", strategy_options={"xi": xi, "eps": 1e-4}))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got, _ = strategy.arch_gradient(model, train, valid)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # weights restored exactly
    assert all(p.grad is None for p in model.parameters())

    # Explicit: d/dA L_val(w - xi grad_w L_train(w, A), A) by double backward.
    names = [n for n, _ in model.named_parameters()]
    params = dict(model.named_parameters())
    arch_names = [n for n in names if n.startswith("arch.")]
    weight_names = [n for n in names if not n.startswith("arch.")]

    def loss(p, batch):
        inputs, target = batch
        return F.mse_loss(functional_call(model, p, args=(), kwargs=inputs), target)

    g_w = torch.autograd.grad(loss(params, train), [params[n] for n in weight_names], create_graph=True)
    unrolled = {**params, **{n: params[n] - xi * g for n, g in zip(weight_names, g_w)}}
    want = torch.autograd.grad(loss(unrolled, valid), [params[n] for n in arch_names])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-8)
    # The second-order term is not negligible here: the test would catch its absence.
    assert any(float((w - f).abs().max()) > 1e-4 for w, f in zip(want, _first_order(model, valid, unrolled, arch_names)))


def _first_order(model, valid, unrolled, arch_names):
    """grad_A L_val(w', A) with w' held fixed (no path through the virtual step)."""
    inputs, target = valid
    fixed = {n: (t if n in arch_names else t.detach()) for n, t in unrolled.items()}
    return torch.autograd.grad(F.mse_loss(functional_call(model, fixed, args=(), kwargs=inputs), target),
                               [fixed[n] for n in arch_names])


def _double(x):
    return {k: v.double() for k, v in x.items()} if isinstance(x, dict) else x.double()


def test_recovers_the_planted_op_and_edges(tmp_path):
    found = recoveries(tmp_path, "darts2")
    assert recovered(found) >= 4, found


def test_resume_is_exact(tmp_path):
    assert_resume_is_exact(tmp_path, "darts2")
