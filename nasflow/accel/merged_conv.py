"""One conv for a family of candidates linear in the same input (conv 1x1 ... 7x7, no
bias): y = conv(x, sum_j w_j pad(K_j)), with a cheaper gradient for the arch steps.

The weights step needs the whole kernel gradient dK (one 7x7 weight-gradient conv). An arch
step needs only s_j = dL/dw_j = <dK, pad(K_j)> for each candidate, and those of the smaller
kernels read only the centre of dK: for DLSR's 1x1, 3x3 and 5x5 the central 5x5, a
weight-gradient conv of 25 taps instead of 49. The one largest kernel's s_max then follows
from the identity sum_j w_j s_j = <dK, K> = <g, y> (g the output gradient, y the output):

    s_max = (<g, y> - sum_{j != max} w_j s_j) / w_max

s_max is only ever multiplied by w_max again (the softmax's backward takes w_j s_j), so the
division costs no accuracy in the arch gradient: its error stays at float rounding of <g, y>.
Results equal the stock autograd path to float rounding (tests: 1e-4 relative).
`bench/speed.py`: about 0.12 s of a 2.3 s DLSR search step (two arch passes), CPU.

CPU only (custom_fwd/custom_bwd keep the bf16 autocast lever working there); elsewhere the
plain autograd expression is used.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from nasflow.accel.custom_grad import wanted


def merged_conv(x: Tensor, w: Tensor, kernels: list[Tensor]) -> Tensor:
    """conv(x, sum_j w[j] * kernels[j] zero-padded to the largest), 'same' padding, stride 1;
    the kernels odd, square and bias-free."""
    if x.device.type != "cpu":
        return F.conv2d(x, _merge(w, kernels), padding=max(k.shape[-1] for k in kernels) // 2)
    return _MergedConv.apply(x, w, *kernels)


def _pad_to(kernel: Tensor, size: int) -> Tensor:
    p = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, (p, p, p, p)) if p else kernel


def _crop(kernel: Tensor, size: int) -> Tensor:
    p = (kernel.shape[-1] - size) // 2
    return kernel[..., p:p + size, p:p + size] if p else kernel


def _merge(w: Tensor, kernels: list[Tensor]) -> Tensor:
    size = max(k.shape[-1] for k in kernels)
    return torch.tensordot(w, torch.stack([_pad_to(k, size) for k in kernels]), dims=1)


def _weight_grad(grad: Tensor, x: Tensor, weight_shape: tuple[int, ...]) -> Tensor:
    """dL/dK for y = conv(x, K) with K of `weight_shape`, 'same' padding."""
    k = weight_shape[-1]
    dummy = x.new_empty(weight_shape)  # read for its shape only
    return torch.ops.aten.convolution_backward(grad, x, dummy, None, [1, 1], [k // 2, k // 2], [1, 1],
                                               False, [0, 0], 1, [False, True, False])[1]


def _inner(a: Tensor, b: Tensor) -> Tensor:
    """<a, b> in fp32: one dot over the shared memory order where both are dense in it
    (no product tensor written and read back), else the product's sum."""
    a, b = a.float(), b.float()
    for fmt, order in ((torch.contiguous_format, (0, 1, 2, 3)), (torch.channels_last, (0, 2, 3, 1))):
        if a.dim() == 4 and a.is_contiguous(memory_format=fmt) and b.is_contiguous(memory_format=fmt):
            return torch.dot(a.permute(order).reshape(-1), b.permute(order).reshape(-1))
    return (a * b).sum()


class _MergedConv(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx: Any, x: Tensor, w: Tensor, *kernels: Tensor) -> Tensor:
        merged = _merge(w, list(kernels))
        y = F.conv2d(x, merged, padding=merged.shape[-1] // 2)
        ctx.save_for_backward(x, w, merged, y, *kernels)
        return y

    @staticmethod
    @once_differentiable
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, w, merged, y, *kernels = ctx.saved_tensors
        # The aten backward op is not autocast's: under bf16 autocast x is bf16, and the
        # kernel and output gradient must be too.
        grad, merged = grad.to(x.dtype), merged.to(x.dtype)
        sizes = [k.shape[-1] for k in kernels]
        size = merged.shape[-1]
        grad_x = grad_w = None
        grad_k: list[Tensor | None] = [None] * len(kernels)
        if wanted(ctx, 0):
            grad_x = torch.ops.aten.convolution_backward(grad, x, merged, None, [1, 1], [size // 2] * 2, [1, 1],
                                                         False, [0, 0], 1, [True, False, False])[0]
        want_w = wanted(ctx, 1)
        want_k = [wanted(ctx, 2 + j) for j in range(len(kernels))]
        smaller = [s for s in sizes if s < size]
        # The centre suffices when no kernel's gradient is asked for (an arch step), one kernel
        # alone has the largest size, and its weight is not 0 (it is divided by).
        centre = (not any(want_k) and sizes.count(size) == 1 and bool(smaller)
                  and float(w[sizes.index(size)]) > 0.0)
        if any(want_k) or (want_w and not centre):
            full = _weight_grad(grad, x, tuple(merged.shape))
            crops = [_crop(full, s) for s in sizes]
            if want_w:
                grad_w = torch.stack([(c.float() * k).sum() for c, k in zip(crops, kernels)])
            grad_k = [w[j] * crops[j] if want_k[j] else None for j in range(len(kernels))]
        elif want_w:
            inner = max(smaller)
            dk = _weight_grad(grad, x, (*merged.shape[:2], inner, inner))
            top = sizes.index(size)
            s = [(_crop(dk, sz).float() * k).sum() if j != top else w.new_zeros(())
                 for j, (sz, k) in enumerate(zip(sizes, kernels))]
            rest = sum(w[j] * s[j] for j in range(len(kernels)) if j != top)
            s[top] = (_inner(grad, y) - rest) / w[top]
            grad_w = torch.stack(s)
        return (grad_x, grad_w, *grad_k)
