"""The fused supernet computes what the plain one computes: outputs and every gradient."""
from __future__ import annotations

import pytest
import torch
from toy_spaces import python_space

from nasflow.space.graph import build_graph
from nasflow.space.schema import Space, choice, op
from nasflow.compile.supernet import compile_graph

ALL = ["conv_1x1", "conv_3x3", "conv_5x5", "conv_7x7", "sep_conv_3x3", "sep_conv_5x5",
       "sep_conv_7x7", "dil_conv_3x3", "dil_conv_5x5", "identity"]


def _space(candidates: list[str], bias: bool = False) -> Space:
    extra = {"bias": True} if bias else {}
    return Space(name="t", inputs={"x": 3}, nodes={
        "stem": op("conv_3x3", "x", out=6),
        "m": choice(candidates, "stem", act="lrelu", **extra),
        "head": op("conv_1x1", "m", out=3)}, output="head")


def _grads(model, x):
    model.zero_grad()
    y = model(x)
    (y.square().mean()).backward()
    return y.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("space", [
    _space(ALL), _space(["conv_1x1", "conv_5x5"], bias=True), _space(["sep_conv_5x5"]),
    _space(["dil_conv_3x3", "identity", "conv_3x3"]), _space(["sep_conv_3x3", "dil_conv_5x5", "sep_conv_7x7"]),
    python_space()], ids=["all", "convs+bias", "one sep", "mixed", "sep+dil", "toy"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_equals_plain(space, channels_last):
    torch.manual_seed(0)
    graph = build_graph(space)
    plain, fused = compile_graph(graph, fuse=False), compile_graph(graph, fuse=True)
    with torch.no_grad():
        for p in plain.arch_parameters():
            p.normal_()
    fused.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 19, 21) * 255
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
        x_fused = x.contiguous(memory_format=torch.channels_last)
    else:
        x_fused = x
    y0, g0 = _grads(plain, x)
    y1, g1 = _grads(fused, x_fused)
    torch.testing.assert_close(y1, y0, rtol=1e-4, atol=1e-4 * y0.abs().max().item())
    assert g0.keys() == g1.keys()
    for name in g0:
        scale = g0[name].abs().max().item() + 1e-12
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-4, atol=1e-4 * scale, msg=name)


def _milenas_step(fuse: bool, channels_last: bool):
    """One MiLeNAS step (SGD, so tiny gradient differences stay tiny) on DLSR at 8 channels."""
    from pathlib import Path

    import torch.nn.functional as F

    from nasflow.search.config import SearchConfig
    from nasflow.accel.levers import prepare_model, wrap_loss
    from nasflow.space.load import load_space
    from nasflow.strategies import MiLeNAS

    space = load_space(Path(__file__).resolve().parents[1] / "spaces" / "dlsr" / "space.yaml", {"channels": 8})
    torch.manual_seed(0)
    model = prepare_model(compile_graph(build_graph(space), fuse=fuse), channels_last)
    with torch.no_grad():
        for p in model.arch_parameters():
            p.normal_()
    loss = wrap_loss(lambda m, b: (F.l1_loss(m(b[0]), b[1]), {}), channels_last=channels_last,
                     amp="none", device=torch.device("cpu"))
    strategy = MiLeNAS(loss, None, torch.optim.SGD(model.weights(), lr=1e-3),
                       torch.optim.SGD(model.arch_parameters(), lr=1.0), SearchConfig(batch_size=2))
    g = torch.Generator().manual_seed(3)
    batches = [(torch.rand(2, 3, 20, 22, generator=g) * 255, torch.rand(2, 3, 40, 44, generator=g) * 255)
               for _ in range(2)]
    logs = strategy.step(model, *batches)
    return logs, {n: p.detach().contiguous() for n, p in model.named_parameters()}


def test_search_step_levers_equal_plain():
    """fused kernels + channels_last through a whole MiLeNAS step: same losses, weights, arch."""
    logs0, params0 = _milenas_step(fuse=False, channels_last=False)
    logs1, params1 = _milenas_step(fuse=True, channels_last=True)
    for k in ("train/loss", "arch_train/loss", "valid/loss"):
        assert abs(logs1[k] - logs0[k]) <= 1e-4 * abs(logs0[k]), k
    for name, p0 in params0.items():
        torch.testing.assert_close(params1[name], p0, rtol=1e-4, atol=1e-4 * (p0.abs().max().item() + 1e-12),
                                   msg=name)


def test_keep_freed_memory_applies_to_the_cpu_only():
    import platform
    import sys

    from nasflow.accel.levers import keep_freed_memory

    assert keep_freed_memory(torch.device("meta")) is False
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert keep_freed_memory(torch.device("cpu")) is True
        assert keep_freed_memory(torch.device("cpu")) is True  # idempotent
