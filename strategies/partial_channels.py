"""PC-DARTS' partial channel connections as mixed-op implementations ("partial-k4", ...).

A 1/K share of the input's channels goes through the candidates (weighted as any mixed op
weights them), the rest bypasses them, and the two are concatenated and channel-shuffled
(K groups), so the next mixed op sees a different share. On a reducing edge (stride 2) the
bypass is max-pooled 2x2 to the candidates' output size, as PC-DARTS does. The candidates
are built for C/K channels: a K times cheaper search. K = 1 is the plain mixed op exactly
(same parameters, same order of construction, identity shuffle).

The share's weighted sum is the plain mixed op's (`partial-kK`) or, when the search runs with
the fused kernels (`fuse`, on by default), the fused one's (`partial-kK-fused`: merged
convs, fast depthwise gradients; nasflow.accel.fused), so partial channels keep the engine's
speed levers. Both have the plain op's parameter names; the fused one's results equal the
plain one's up to float rounding, and with K = 1 it is the "fused" mixed op exactly.
"""
from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import torch
from torch import Tensor

from nasflow.accel.fused import FusedMixedOp
from nasflow.compile.mixed_ops import MIXED_OPS, MixedOp, register_mixed_op
from nasflow.errors import NasflowError
from nasflow.space.graph import GNode
from nasflow.space.values import Sym


class PartialMixedOp(MixedOp):
    """sum_o w_o * o(x[:, :C/K]) beside x[:, C/K:], shuffled in K groups. The sum is the
    base mixed op's `mix` (MixedOp here, FusedMixedOp in the fused variant) on C/K channels."""

    k: ClassVar[int] = 4

    def __init__(self, g: GNode) -> None:
        c_in, c_out, k = g.c_in[0], g.c_out, self.k
        if k > 1 and (isinstance(c_in, Sym) or isinstance(c_out, Sym)):
            width = c_out if isinstance(c_out, Sym) else c_in
            raise NasflowError(f"choice node '{g.name}': its width is a value decision ({width.describe()}), "
                               "and partial channels shuffle channels, which the width's masks and slices cannot "
                               "follow; search this space with darts, darts2, milenas, gdas, drnas, spos or sandwich, "
                               "or use k=1")
        if c_in != c_out or c_in % k:
            raise NasflowError(f"choice node '{g.name}': partial channels (K={k}) need as many output "
                               f"channels as input channels, a multiple of K (it has {c_in} -> {c_out}); "
                               f"use another K (--strategy-opt k=...) or another strategy")
        super().__init__(replace(g, c_in=[c_in // k], c_out=c_out // k))

    def forward(self, x: Tensor, weights: Tensor, active: list[int] | None = None) -> Tensor:
        k = self.k
        if k == 1:
            return super().forward(x, weights, active)
        share = x.shape[1] // k
        # One split (not two slices): its backward writes both gradients into one tensor
        # instead of two full-size zero-filled ones that are then added.
        part, bypass = x.split([share, x.shape[1] - share], dim=1)
        out = self.mix(part, weights, active)
        if out.shape[2:] != bypass.shape[2:]:
            # A reducing edge: ceil_mode matches the candidates' ceil(H / stride) at odd sizes.
            stride = -(-bypass.shape[2] // out.shape[2])
            bypass = torch.nn.functional.max_pool2d(bypass, stride, stride, ceil_mode=True)
        return self.act(shuffled_concat(out, bypass, k, _is_channels_last(x)))


def _is_channels_last(x: Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def shuffled_concat(out: Tensor, bypass: Tensor, groups: int, channels_last: bool = False) -> Tensor:
    """channel_shuffle(cat([out, bypass]), groups) in one copy: the bypass, viewed as its
    groups - 1 shares interleaved, is written beside `out` by a single cat, along the
    dimension channels are laid out on in memory (the last with `channels_last`), so the
    result keeps the input's memory format."""
    share = out.shape[1]
    if channels_last:
        # N x H x W x C views: the shares interleave along the innermost dimension.
        rest = bypass.permute(0, 2, 3, 1).unflatten(3, (groups - 1, share)).transpose(3, 4)
        merged = torch.cat([out.permute(0, 2, 3, 1).unsqueeze(4), rest], dim=4)
        return merged.flatten(3, 4).permute(0, 3, 1, 2)
    rest = bypass.unflatten(1, (groups - 1, share)).transpose(1, 2)  # N x share x (G-1) x ...
    return torch.cat([out.unsqueeze(2), rest], dim=2).flatten(1, 2)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """N x (G*C) x ... -> channels interleaved across the G groups (ShuffleNet's shuffle)."""
    n, c = x.shape[:2]
    return x.reshape(n, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


def partial_mixed_op(k: int, fused: bool = False) -> str:
    """The MIXED_OPS name of partial channels with K = k over the plain candidates
    ("partial-kK") or the fused kernels ("partial-kK-fused"), registered on first use."""
    name = f"partial-k{k}" + ("-fused" if fused else "")
    if name not in MIXED_OPS:
        bases = (PartialMixedOp, FusedMixedOp) if fused else (PartialMixedOp,)
        cls = type(f"PartialMixedOpK{k}" + ("Fused" if fused else ""), bases, {"k": k})
        register_mixed_op(name)(cls)
    return name
