"""Adam runs fused where torch has the kernel, and a checkpoint restores it exactly: the
moments come back contiguous from the file and must take their channels-last weight's layout
again (torch's fused kernel pairs elements by memory order, not by index)."""
from __future__ import annotations

import torch
from torch import nn

from nasflow.runs.checkpoint import load_checkpoint, save_checkpoint
from nasflow.runs.optim import load_optimizer_state, make_optimizer


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.05),
                         nn.Conv2d(8, 3, 3, padding=1)).to(memory_format=torch.channels_last)


def _steps(model: nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    for i in steps:
        g = torch.Generator().manual_seed(i)
        x = torch.rand(2, 3, 12, 12, generator=g).contiguous(memory_format=torch.channels_last)
        opt.zero_grad()
        (model(x) - x).abs().mean().backward()
        opt.step()


def test_adam_is_fused_on_the_cpu_and_agrees_with_the_loop_to_rounding():
    fused, looped = _model(), _model()
    opt = make_optimizer(fused.parameters(), "adam", lr=1e-2)
    assert opt.param_groups[0]["fused"] is True
    _steps(fused, opt, range(5))
    _steps(looped, torch.optim.Adam(looped.parameters(), lr=1e-2, foreach=False), range(5))
    for a, b in zip(fused.parameters(), looped.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_adam_resumes_from_a_checkpoint_bit_for_bit(tmp_path):
    whole = _model()
    _steps(whole, make_optimizer(whole.parameters(), "adam", lr=1e-1), range(6))

    first = _model()
    opt = make_optimizer(first.parameters(), "adam", lr=1e-1)
    _steps(first, opt, range(3))
    save_checkpoint(tmp_path / "c.safetensors", dict(first.state_dict()), {"optim": opt.state_dict()})

    weights, state = load_checkpoint(tmp_path / "c.safetensors")
    resumed = _model()
    resumed.load_state_dict(weights)
    opt = make_optimizer(resumed.parameters(), "adam", lr=1e-1)
    assert not state["optim"]["state"][0]["exp_avg"].is_contiguous(memory_format=torch.channels_last)
    load_optimizer_state(opt, state["optim"])
    for p in resumed.parameters():
        assert opt.state[p]["exp_avg"].stride() == p.stride()
    _steps(resumed, opt, range(3, 6))
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
