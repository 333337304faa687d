"""Depthwise conv gradients, stock (oneDNN through autograd) against nasflow.depthwise, per
kernel size and dilation, channels-last fp32 (by hand, never in tests):

    python bench/depthwise.py --threads 2
    python bench/depthwise.py --shape 32 48 48 48
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nasflow.accel.depthwise import depthwise_conv
from nasflow.accel.levers import keep_freed_memory


def _ms(fn: Callable[[], object], reps: int) -> float:
    fn()
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[16, 48, 32, 32], metavar=("N", "C", "H", "W"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory(torch.device("cpu"))
    n, c, h, w = args.shape
    cl = torch.channels_last
    x = torch.randn(n, c, h, w).contiguous(memory_format=cl).requires_grad_()
    g = torch.randn(n, c, h, w).contiguous(memory_format=cl)
    print(f"depthwise conv {n}x{c}x{h}x{w}, channels-last fp32, {args.threads} threads: ms per gradient")
    print(f"{'kernel':10s} {'input: stock':>13s} {'nasflow':>8s} {'x':>6s} {'weight: stock':>14s} {'nasflow':>8s} {'x':>6s}")
    for k, d in ((3, 1), (5, 1), (7, 1), (3, 2), (5, 2)):
        weight = torch.randn(c, 1, k, k).contiguous(memory_format=cl).requires_grad_()
        pad = d * (k // 2)

        def stock() -> torch.Tensor:
            return F.conv2d(x, weight, padding=pad, dilation=d, groups=c)

        def ours() -> torch.Tensor:
            return depthwise_conv(x, weight, d)

        row = []
        for target in (x, weight):
            for fn in (stock, ours):
                row.append(_ms(lambda fn=fn, target=target: torch.autograd.grad(fn(), [target], g), args.reps))
        name = f"{k}x{k}" + (f" d{d}" if d > 1 else "")
        print(f"{name:10s} {row[0]:13.2f} {row[1]:8.2f} {row[0] / row[1]:5.1f}x {row[2]:14.2f} {row[3]:8.2f} "
              f"{row[2] / row[3]:5.1f}x")
    print("Each time is a forward and one gradient (autograd.grad for that input alone).")


if __name__ == "__main__":
    main()
