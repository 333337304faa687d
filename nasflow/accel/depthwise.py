"""Depthwise convolution (stride 1, 'same' padding) with a faster backward on the CPU.

oneDNN's depthwise kernels are fast forward, but backward they are fast only for
undilated 3x3: the weight gradient of a 5x5 or 7x7 kernel, and both gradients of a dilated
one, fall to its generic grouped-convolution kernel, which blocks channels by 16 and so
does up to 16x the work. bench/depthwise.py measures it (16 x 48 x 32 x 32, 2 threads,
forward included): a 7x7 kernel's weight gradient 2.9 ms that way, 1.4 ms here; a dilated
5x5's input gradient 1.8 ms that way, 0.4 ms here. Both gradients are computed with forward
depthwise convolutions instead, the fast path:

- input gradient: the forward conv of the output gradient with the flipped kernel (the
  transpose of a stride-1 'same' convolution is that correlation);
- weight gradient: dW[c, a, b] = sum over n, y, x of g[n, c, y, x] * x_pad[n, c, y + d*a,
  x + d*b], which is a forward depthwise conv of x (as one image of N*C channels) with g as
  the (H x W) kernel of each channel, at stride d, summed over n.

Values equal F.conv2d's gradients up to float rounding (tests: 1e-5 relative). Off the CPU,
and for undilated 3x3 kernels, plain F.conv2d is used. The fused supernet calls
`depthwise_conv`; training a derived model swaps its depthwise convs for
`FastDepthwiseConv2d` (`use_fast_depthwise`): derived DLSR, batch 16, HR patch 96, 2 threads,
0.47 -> 0.39 s a step (bench/train_step.py).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from nasflow.accel.custom_grad import wanted


def depthwise_conv(x: Tensor, weight: Tensor, dilation: int = 1) -> Tensor:
    """F.conv2d(x, weight, padding=dilation * (k // 2), dilation=dilation, groups=C), for a
    C x 1 x k x k weight with k odd; faster to differentiate on the CPU."""
    k = weight.shape[-1]
    if x.device.type != "cpu" or (k <= 3 and dilation == 1):
        return F.conv2d(x, weight, padding=dilation * (k // 2), dilation=dilation, groups=x.shape[1])
    return _DepthwiseConv.apply(x, weight, dilation)


def _weight_grad(x: Tensor, grad: Tensor, k: int, dilation: int) -> Tensor:
    n, c, h, w = x.shape
    # x as one image of N*C channels (channels-last order) and each grad[n, c] as its kernel.
    image = x.permute(2, 3, 0, 1).reshape(1, h, w, n * c).permute(0, 3, 1, 2)
    kernels = grad.reshape(n * c, 1, h, w)
    out = F.conv2d(image, kernels, padding=dilation * (k // 2), stride=dilation, groups=n * c)
    return out.reshape(n, c, k, k).sum(0).unsqueeze(1)


def _layout(t: Tensor) -> torch.memory_format:
    cl = torch.channels_last
    return cl if t.is_contiguous(memory_format=cl) and not t.is_contiguous() else torch.contiguous_format


class _DepthwiseConv(torch.autograd.Function):
    # custom_fwd / custom_bwd: under autocast (bf16 lever) both passes run with the
    # autocast state of the call, so the convs inside cast as the stock conv would.
    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx: Any, x: Tensor, weight: Tensor, dilation: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.dilation = dilation
        k = weight.shape[-1]
        return F.conv2d(x, weight, padding=dilation * (k // 2), dilation=dilation, groups=x.shape[1])

    @staticmethod
    @once_differentiable
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x, weight = ctx.saved_tensors
        d, k, c = ctx.dilation, weight.shape[-1], x.shape[1]
        # A channel slice of a concat's gradient (a concat downstream, as in DARTS cells):
        # made dense once, in x's order, for both convs below (each would copy it otherwise).
        grad = grad.contiguous(memory_format=_layout(x))
        grad_x = grad_w = None
        if wanted(ctx, 0):
            grad_x = F.conv2d(grad, weight.flip(-2, -1), padding=d * (k // 2), dilation=d, groups=c)
        if wanted(ctx, 1):
            grad_w = _weight_grad(x, grad, k, d)
        return grad_x, grad_w, None


class FastDepthwiseConv2d(nn.Conv2d):
    """An nn.Conv2d (same parameters, same state dict) that differentiates through
    `depthwise_conv`; without autograd (inference, ONNX tracing) it is the stock conv."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and not torch.jit.is_tracing():
            return depthwise_conv(x, self.weight, self.dilation[0])
        return super().forward(x)


def use_fast_depthwise(model: nn.Module) -> int:
    """Make every stride-1, 'same'-padded, bias-free depthwise nn.Conv2d of `model` a
    FastDepthwiseConv2d, in place (its class only: parameters and hooks stay); returns how
    many. Other convs are left alone."""
    swapped = 0
    for m in model.modules():
        if type(m) is nn.Conv2d and _same_depthwise(m):
            m.__class__ = FastDepthwiseConv2d
            swapped += 1
    return swapped


def _same_depthwise(m: nn.Conv2d) -> bool:
    k, d = m.kernel_size, m.dilation
    return (m.groups == m.in_channels == m.out_channels and m.bias is None and k[0] == k[1]
            and k[0] % 2 == 1 and m.stride == (1, 1) and d[0] == d[1]
            and m.padding == (d[0] * (k[0] // 2),) * 2 and m.padding_mode == "zeros")
