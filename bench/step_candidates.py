"""The candidate rewrites of the default DLSR step's slow ops, each alone at the step's shapes
(16 x 48 x 32 x 32, channels-last fp32), on CPU time (by hand, never in tests):

    python bench/step_candidates.py --threads 1

1. The depthwise kernel gradient (nasflow/accel/depthwise.py): the way nasflow computes it (x
   as one image of N*C channels in (h, w, n, c) order, the output gradient as its N*C
   kernels, a forward depthwise conv) against the same with NCHW copies, with the two roles
   swapped (the gradient as the image, x as the kernels, output flipped), as a grouped conv
   with the batch inside each group (C groups of N inputs), oneDNN's own backward with the
   batch folded into the channels, and oneDNN's stock backward. Also the layout copies the
   nasflow way makes, alone.
2. A 1x1 conv (the pointwise convs) against the same product as a matmul on the
   channels-last view (F.linear, no copy), forward and forward + both gradients.

Each time is the best of `--reps` on the process's CPU time, in ms; the relative difference
to the first column is printed beside each (they compute the same thing).
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from nasflow.accel.depthwise import _weight_grad
from nasflow.accel.levers import keep_freed_memory

CL = torch.channels_last


def cpu_ms(fn: Callable[[], object], reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best * 1e3


def _hwnc(t: Tensor) -> Tensor:
    n, c, h, w = t.shape
    return t.permute(2, 3, 0, 1).reshape(1, h, w, n * c).permute(0, 3, 1, 2)


def kernel_grad_variants(x: Tensor, g: Tensor, k: int, d: int) -> dict[str, Callable[[], Tensor]]:
    n, c, h, w = x.shape
    p = d * (k // 2)

    def nchw() -> Tensor:
        out = F.conv2d(x.contiguous().view(1, n * c, h, w), g.contiguous().view(n * c, 1, h, w),
                       padding=p, stride=d, groups=n * c)
        return out.view(n, c, k, k).sum(0).unsqueeze(1)

    def swapped() -> Tensor:
        out = F.conv2d(_hwnc(g), x.reshape(n * c, 1, h, w), padding=p, stride=d, groups=n * c)
        return out.reshape(n, c, k, k).sum(0).flip(-2, -1).unsqueeze(1)

    def grouped() -> Tensor:
        image = x.permute(2, 3, 1, 0).reshape(1, h, w, c * n).permute(0, 3, 1, 2)
        return F.conv2d(image, g.permute(1, 0, 2, 3).contiguous(), padding=p, stride=d, groups=c).view(c, 1, k, k)

    def folded() -> Tensor:
        out = torch.ops.aten.convolution_backward(_hwnc(g), _hwnc(x), x.new_empty(n * c, 1, k, k), None, [1, 1],
                                                  [p, p], [d, d], False, [0, 0], n * c, [False, True, False])[1]
        return out.view(n, c, k, k).sum(0).unsqueeze(1)

    def stock() -> Tensor:
        return torch.ops.aten.convolution_backward(g, x, x.new_empty(c, 1, k, k), None, [1, 1], [p, p], [d, d],
                                                   False, [0, 0], c, [False, True, False])[1]

    return {"nasflow": lambda: _weight_grad(x, g, k, d), "NCHW copies": nchw, "roles swapped": swapped,
            "batch in groups": grouped, "oneDNN folded": folded, "oneDNN stock": stock}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory(torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    n, c, h, w = 16, 48, 32, 32
    x = torch.randn(n, c, h, w, generator=gen).contiguous(memory_format=CL)
    g = torch.randn(n, c, h, w, generator=gen).contiguous(memory_format=CL)
    print(f"depthwise kernel gradient, {n}x{c}x{h}x{w} channels-last, {args.threads} thread(s): CPU ms (rel. diff)")
    for k, d in ((5, 1), (7, 1), (3, 2), (5, 2)):
        variants = kernel_grad_variants(x, g, k, d)
        want = variants["nasflow"]()
        cells = []
        for name, fn in variants.items():
            diff = float((fn() - want).abs().max() / want.abs().max())
            cells.append(f"{name} {cpu_ms(fn, args.reps):6.2f} ({diff:.0e})")
        print(f"  {k}x{k}{' d2' if d > 1 else '   '}: " + " | ".join(cells))
    copies = cpu_ms(lambda: (_hwnc(x), g.reshape(n * c, 1, h, w)), args.reps)
    print(f"  of which the nasflow way's two layout copies: {copies:.2f}")
    print(f"\n1x1 conv, {n}x{{C}}x{h}x{w} -> 48 channels: CPU ms, forward | forward + both gradients")
    for cin in (48, 144, 240):
        xi = torch.randn(n, cin, h, w, generator=gen).contiguous(memory_format=CL).requires_grad_()
        wt = torch.randn(48, cin, 1, 1, generator=gen).requires_grad_()
        up = torch.randn(n, 48, h, w, generator=gen).contiguous(memory_format=CL)
        ways = {"conv2d": lambda: F.conv2d(xi, wt),
                "linear": lambda: F.linear(xi.permute(0, 2, 3, 1), wt.view(48, cin)).permute(0, 3, 1, 2)}
        cells = []
        for name, fn in ways.items():
            both = cpu_ms(lambda fn=fn: torch.autograd.grad(fn(), [xi, wt], up), args.reps)
            cells.append(f"{name} {cpu_ms(fn, args.reps):6.2f} | {both:6.2f}")
        print(f"  C={cin:3d}: " + "   ".join(cells))


if __name__ == "__main__":
    main()
