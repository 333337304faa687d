"""MiLeNAS reuse_forward: grad_A L_train comes from the weights step's backward, so it is the
gradient at the weights *before* the update; the weights step itself is unchanged. Also the
other search levers (channels_last, bf16 autocast) through a whole search."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from synthetic import PlantedTask, fast_config, planted_space

from nasflow.search.config import SearchConfig
from nasflow.errors import NasflowError
from nasflow.space.graph import build_graph
from nasflow.accel.levers import wrap_loss
from nasflow.search.loop import run_search
from nasflow.strategies import MiLeNAS
from nasflow.compile.supernet import compile_graph


def _mse(model, batch):
    inputs, target = batch
    return F.mse_loss(model(**inputs), target), {}


def _setup(reuse: bool, lam: float = 1.0):
    torch.manual_seed(0)
    model = compile_graph(build_graph(planted_space()))
    with torch.no_grad():  # arch away from uniform, so every grad term matters
        for p in model.arch_parameters():
            p.normal_()
    strategy = MiLeNAS(_mse, None, torch.optim.SGD(model.weights(), lr=0.1),
                       torch.optim.SGD(model.arch_parameters(), lr=1.0),
                       fast_config(strategy="milenas", lam=lam, reuse_forward=reuse))
    g = torch.Generator().manual_seed(5)
    task = PlantedTask()
    return model, strategy, task.sample(4, g), task.sample(4, g)


def _grad_arch(model, batch):
    return list(torch.autograd.grad(_mse(model, batch)[0], model.arch_parameters()))


def test_reused_grad_is_grad_at_pre_update_weights():
    model, strategy, train, _ = _setup(reuse=True)
    before = copy.deepcopy(model)
    expected = _grad_arch(before, train)
    _, grads = strategy.weights_step_with_arch_grad(model, train)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)
    assert all(p.grad is None for p in model.arch_parameters())  # nothing left behind


def test_reuse_weights_step_equals_plain_weights_step():
    plain, s_plain, train, _ = _setup(reuse=False)
    reuse, s_reuse, _, _ = _setup(reuse=True)
    s_plain.weights_step(plain, train)
    s_reuse.weights_step_with_arch_grad(reuse, train)
    for (n, a), b in zip(plain.named_weights(), reuse.weights()):
        torch.testing.assert_close(b, a, msg=n)


@pytest.mark.parametrize("lam", [1.0, 0.5])
def test_reuse_step_arch_update(lam):
    """A <- A - lr_A (grad_A L_train(w_t) + lambda grad_A L_val(w_{t+1})), with SGD lr 1."""
    model, strategy, train, valid = _setup(reuse=True, lam=lam)
    g_train = _grad_arch(copy.deepcopy(model), train)
    after = copy.deepcopy(model)
    torch.optim.SGD(after.weights(), lr=0.1).zero_grad()
    loss = _mse(after, train)[0]
    loss.backward(inputs=after.weights())
    with torch.no_grad():
        for p in after.weights():
            p -= 0.1 * p.grad
    g_valid = _grad_arch(after, valid)
    start = [p.detach().clone() for p in model.arch_parameters()]
    logs = strategy.step(model, train, valid)
    for p, a0, gt, gv in zip(model.arch_parameters(), start, g_train, g_valid):
        torch.testing.assert_close(p.detach(), a0 - (gt + lam * gv), rtol=1e-5, atol=1e-6)
    assert logs["arch_train/loss"] == logs["train/loss"] and "valid/loss" in logs


def test_without_reuse_arch_grad_is_at_updated_weights():
    """The default keeps the paper's order: grad_A L_train after the weights step."""
    model, strategy, train, valid = _setup(reuse=False)
    strategy.weights_step(model, train)
    expected = _grad_arch(copy.deepcopy(model), train)
    got, _ = strategy.grad_arch(model, train, "arch_train")
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)


def test_search_with_every_lever(tmp_path):
    cfg = fast_config(steps=6, warmup=2, reuse_forward=True, channels_last=True, amp="bf16")
    result = run_search(cfg, tmp_path / "run", space=planted_space(), task=PlantedTask())
    assert result.finished and result.step == 6


def test_bf16_loss_close_to_fp32():
    model, _, train, _ = _setup(reuse=False)
    with torch.no_grad():
        fp32 = wrap_loss(_mse, channels_last=False, amp="none", device=torch.device("cpu"))(model, train)[0]
        bf16 = wrap_loss(_mse, channels_last=True, amp="bf16", device=torch.device("cpu"))(model, train)[0]
    assert bf16.dtype == torch.float32
    assert abs(float(bf16) - float(fp32)) < 0.05 * float(fp32)


def test_bad_amp_is_one_clear_error():
    with pytest.raises(NasflowError, match="amp"):
        SearchConfig.build({"amp": "fp8"})
    with pytest.raises(NasflowError, match="amp must be one of"):
        wrap_loss(_mse, channels_last=False, amp="fp8", device=torch.device("cpu"))
