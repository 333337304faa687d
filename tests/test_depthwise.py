"""nasflow.accel.depthwise computes F.conv2d's depthwise conv and both its gradients, and skips
the weight gradient when a backward does not ask for it (the arch steps)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import nasflow.accel.depthwise as dw
from nasflow.accel.depthwise import depthwise_conv


def _stock(x: torch.Tensor, w: torch.Tensor, d: int) -> torch.Tensor:
    return F.conv2d(x, w, padding=d * (w.shape[-1] // 2), dilation=d, groups=x.shape[1])


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-5) -> None:
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * want.abs().max().item())


@pytest.mark.parametrize("k,d", [(3, 1), (5, 1), (7, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_values_and_gradients_equal_stock_conv(k, d, channels_last):
    g = torch.Generator().manual_seed(k * 10 + d)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 5, 13, 17, generator=g).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(5, 1, k, k, generator=g).contiguous(memory_format=fmt).requires_grad_()
    # The output gradient arrives as a channel slice of a wider one, as after a concat.
    wide = torch.randn(3, 9, 13, 17, generator=g).contiguous(memory_format=fmt)
    up = wide[:, 2:7]
    got = depthwise_conv(x, w, d)
    want = _stock(x, w, d)
    _close(got, want)
    gx, gw = torch.autograd.grad(got, [x, w], up)
    wx, ww = torch.autograd.grad(want, [x, w], up)
    _close(gx, wx)
    _close(gw, ww)


def test_weight_gradient_only_when_asked(monkeypatch):
    calls = []
    real = dw._weight_grad
    monkeypatch.setattr(dw, "_weight_grad", lambda *a: calls.append(1) or real(*a))
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    w = torch.randn(4, 1, 5, 5, requires_grad=True)
    a = torch.ones((), requires_grad=True)  # an "arch" scalar downstream

    def loss() -> torch.Tensor:
        return (a * depthwise_conv(x, w)).square().sum()

    torch.autograd.grad(loss(), [a])  # the arch steps: weights not asked for
    loss().backward(inputs=[a, x])
    assert calls == [] and w.grad is None
    (gw,) = torch.autograd.grad(loss(), [w])  # a leaf autograd.grad asks for
    loss().backward(inputs=[w])
    assert len(calls) == 2
    _close(w.grad, gw)


def test_bf16_autocast_casts_like_the_stock_conv():
    x = torch.randn(2, 6, 11, 11, requires_grad=True)
    w = torch.randn(6, 1, 7, 7, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = depthwise_conv(x, w), _stock(x, w, 1)
    assert got.dtype == want.dtype == torch.bfloat16
    gx, gw = torch.autograd.grad(got.float().sum(), [x, w])
    wx, ww = torch.autograd.grad(want.float().sum(), [x, w])
    assert gx.dtype == gw.dtype == torch.float32
    _close(gx, wx, rtol=2e-2)  # bf16 rounding, in a different order of summation
    _close(gw, ww, rtol=2e-2)


def test_use_fast_depthwise_swaps_depthwise_convs_only():
    from nasflow.accel.depthwise import FastDepthwiseConv2d, use_fast_depthwise
    from nasflow.ops.registry import OPS

    torch.manual_seed(0)

    def net() -> torch.nn.Module:
        return torch.nn.Sequential(*(OPS.get(name).factory(6, 6) for name in ("sep_conv_5x5", "dil_conv_3x3", "conv_3x3")))

    stock, fast = net(), net()
    fast.load_state_dict(stock.state_dict())
    assert use_fast_depthwise(fast) == 3  # two in the separable conv, one in the dilated one
    assert sum(isinstance(m, FastDepthwiseConv2d) for m in fast.modules()) == 3
    assert fast.state_dict().keys() == stock.state_dict().keys()
    x = torch.rand(2, 6, 10, 12)
    _close(fast(x), stock(x))
    gs = torch.autograd.grad(stock(x).square().sum(), list(stock.parameters()))
    gf = torch.autograd.grad(fast(x).square().sum(), list(fast.parameters()))
    for a, b in zip(gf, gs):
        _close(a, b)
    with torch.no_grad():  # inference: the stock conv
        _close(fast(x), stock(x))
