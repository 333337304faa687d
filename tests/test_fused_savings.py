"""What the fused mixed op saves is work removed, not numbers changed: the ops a DLSR mixed
layer dispatches are counted (the separable and dilated candidates' pointwise convs summed in
place: no concat, no product per candidate), a depthwise backward hands its convs a dense
gradient, and the merged conv's <g, y> is one dot. Values against the plain path:
tests/test_fused.py."""
from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import nasflow.accel.merged_conv as mc
from nasflow.accel.depthwise import depthwise_conv
from nasflow.compile.supernet import compile_graph
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space, choice

DLSR = ["conv_1x1", "conv_3x3", "conv_5x5", "conv_7x7", "sep_conv_3x3", "sep_conv_5x5",
        "sep_conv_7x7", "dil_conv_3x3", "dil_conv_5x5"]


class Ops(TorchDispatchMode):
    """How many times each ATen op runs."""

    def __init__(self) -> None:
        super().__init__()
        self.count: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.count[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def _mixed_layer(candidates: list[str]) -> Any:
    space = Space(name="t", inputs={"x": 4}, nodes={"m": choice(candidates, "x")}, output="m")
    torch.manual_seed(0)
    net = compile_graph(build_graph(space), fuse=True).to(memory_format=torch.channels_last)
    return net, torch.rand(2, 4, 9, 11).contiguous(memory_format=torch.channels_last)


def test_a_dlsr_mixed_layer_sums_its_pointwise_convs_in_place_without_a_concat():
    net, x = _mixed_layer(DLSR)
    with Ops() as ops:
        y = net(x)
    # the merged 1x1..7x7 conv; per separable candidate depthwise, pointwise, depthwise, then
    # its last pointwise; per dilated one its depthwise and pointwise
    assert ops.count["convolution"] == 1 + 3 * 4 + 2 * 2
    assert ops.count["cat"] == 0  # neither the activations nor the kernels
    assert ops.count["add_"] == 3 + 1  # the five pointwise outputs summed in the first
    assert ops.count["add"] == 1  # merged conv + pointwise
    # the candidates' weights scale the small kernels, never an activation
    assert ops.count["mul"] == 5
    assert y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("k,d", [(5, 1), (3, 2)])
def test_depthwise_backward_gives_its_convs_a_dense_gradient(monkeypatch, k, d):
    cl = torch.channels_last
    x = torch.randn(2, 5, 9, 11).contiguous(memory_format=cl).requires_grad_()
    w = torch.randn(5, 1, k, k).requires_grad_()
    wide = torch.randn(2, 15, 9, 11).contiguous(memory_format=cl)
    up = wide[:, 5:10]  # a channel slice of a concat's gradient
    y = depthwise_conv(x, w, d)
    dense: list[bool] = []
    real = F.conv2d

    def conv2d(inp: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        dense.append(inp.is_contiguous(memory_format=cl))
        return real(inp, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", conv2d)
    gx, gw = torch.autograd.grad(y, [x, w], up)
    monkeypatch.setattr(F, "conv2d", real)
    assert dense == [True, True]  # the input gradient's conv and the kernel gradient's
    wx, ww = torch.autograd.grad(F.conv2d(x, w, padding=d * (k // 2), dilation=d, groups=5), [x, w], up)
    torch.testing.assert_close(gx, wx, rtol=1e-5, atol=1e-5 * wx.abs().max().item())
    torch.testing.assert_close(gw, ww, rtol=1e-5, atol=1e-5 * ww.abs().max().item())


@pytest.mark.parametrize("fa,fb", [("cl", "cl"), ("nchw", "nchw"), ("cl", "nchw"), ("slice", "cl")])
def test_inner_product_equals_the_products_sum_in_any_layout(fa, fb):
    g = torch.Generator().manual_seed(1)

    def make(kind: str) -> torch.Tensor:
        t = torch.randn(3, 12, 7, 9, generator=g)
        if kind == "cl":
            return t.contiguous(memory_format=torch.channels_last)
        if kind == "slice":
            return t.contiguous(memory_format=torch.channels_last)[:, 2:8]
        return t

    a, b = make(fa), make(fb)
    if a.shape != b.shape:
        b = b[:, 2:8]
    want = (a.double() * b.double()).sum().float()
    torch.testing.assert_close(mc._inner(a, b), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mc._inner(a.bfloat16(), b.bfloat16()),
                               (a.bfloat16().float() * b.bfloat16().float()).sum(), rtol=1e-5, atol=1e-4)


def test_inner_product_writes_no_product_tensor_when_layouts_agree():
    a = torch.randn(2, 8, 5, 5).contiguous(memory_format=torch.channels_last)
    b = torch.randn(2, 8, 5, 5).contiguous(memory_format=torch.channels_last)
    with Ops() as ops:
        mc._inner(a, b)
    assert ops.count["mul"] == 0 and ops.count["dot"] == 1
