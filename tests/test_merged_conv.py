"""nasflow.accel.merged_conv: the conv of softmax-weighted, zero-padded kernels, whose arch
gradient reads only the centre of the kernel gradient; equal to the autograd expression."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import nasflow.accel.merged_conv as mc
from nasflow.accel.merged_conv import merged_conv


def _setup(sizes: list[int], alpha: list[float] | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, 11, 13, generator=g).contiguous(memory_format=torch.channels_last).requires_grad_()
    kernels = [(torch.randn(5, 6, k, k, generator=g) / k).requires_grad_() for k in sizes]
    a = torch.tensor(alpha if alpha is not None else [0.1 * i for i in range(len(sizes))], requires_grad=True)
    up = torch.randn(2, 5, 11, 13, generator=g)
    return x, kernels, a, up


def _stock(x, a, kernels):
    return F.conv2d(x, mc._merge(torch.softmax(a, 0), kernels), padding=max(k.shape[-1] for k in kernels) // 2)


def _close(got, want, rtol=1e-5):
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * want.abs().max().item())


def _shapes_used(monkeypatch) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    real = mc._weight_grad
    monkeypatch.setattr(mc, "_weight_grad", lambda g, x, shape: shapes.append(tuple(shape)) or real(g, x, shape))
    return shapes


def test_weights_step_gets_every_gradient_from_the_whole_kernel_gradient(monkeypatch):
    x, kernels, a, up = _setup([1, 3, 5, 7])
    shapes = _shapes_used(monkeypatch)
    got = torch.autograd.grad(merged_conv(x, torch.softmax(a, 0), kernels), [x, a, *kernels], up)
    want = torch.autograd.grad(_stock(x, a, kernels), [x, a, *kernels], up)
    for g, w in zip(got, want):
        _close(g, w)
    assert shapes == [(5, 6, 7, 7)]


@pytest.mark.parametrize("alpha", [[0.0, 0.3, -0.2, 0.5], [2.0, 1.0, 0.5, -30.0]], ids=["alike", "7x7 ~1e-14"])
def test_arch_step_reads_the_centre_only_and_equals_autograd(monkeypatch, alpha):
    x, kernels, a, up = _setup([1, 3, 5, 7], alpha)
    shapes = _shapes_used(monkeypatch)
    (got,) = torch.autograd.grad(merged_conv(x, torch.softmax(a, 0), kernels), [a], up)
    (want,) = torch.autograd.grad(_stock(x, a, kernels), [a], up)
    _close(got, want, rtol=1e-4)
    assert shapes == [(5, 6, 5, 5)]  # the 5x5 centre: 25 taps of 49


def test_two_kernels_of_the_largest_size_need_the_whole_gradient(monkeypatch):
    x, kernels, a, up = _setup([3, 7, 7])
    shapes = _shapes_used(monkeypatch)
    (got,) = torch.autograd.grad(merged_conv(x, torch.softmax(a, 0), kernels), [a], up)
    (want,) = torch.autograd.grad(_stock(x, a, kernels), [a], up)
    _close(got, want, rtol=1e-4)
    assert shapes == [(5, 6, 7, 7)]


def test_bf16_autocast():
    x, kernels, a, up = _setup([1, 3, 5, 7])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = merged_conv(x, torch.softmax(a, 0), kernels), _stock(x, a, kernels)
    assert got.dtype == want.dtype == torch.bfloat16
    for g, w in zip(torch.autograd.grad(got.float(), [a, x], up), torch.autograd.grad(want.float(), [a, x], up)):
        _close(g.float(), w.float(), rtol=3e-2)
