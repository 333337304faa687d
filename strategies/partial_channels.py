"""PC-DARTS' partial channel connections as a mixed-op implementation ("partial-k4", ...).

A 1/K share of the input's channels goes through the candidates (weighted as any mixed op
weights them), the rest bypasses them, and the two are concatenated and channel-shuffled
(K groups), so the next mixed op sees a different share. On a reducing edge (stride 2) the
bypass is max-pooled 2x2 to the candidates' output size, as PC-DARTS does. The candidates
are built for C/K channels: a K times cheaper search. K = 1 is the plain mixed op exactly
(same parameters, same order of construction, identity shuffle).
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from nasflow.compile.mixed_ops import MIXED_OPS, activation, build_op, register_mixed_op
from nasflow.errors import NasflowError
from nasflow.space.graph import GNode


class PartialMixedOp(nn.Module):
    """sum_o w_o * o(x[:, :C/K]) beside x[:, C/K:], shuffled in K groups."""

    k: ClassVar[int] = 4

    def __init__(self, g: GNode) -> None:
        super().__init__()
        c_in, c_out, k = g.c_in[0], g.c_out, self.k
        if c_in != c_out or c_in % k:
            raise NasflowError(f"choice node '{g.name}': partial channels (K={k}) need as many output "
                               f"channels as input channels, a multiple of K (it has {c_in} -> {c_out}); "
                               f"use another K (--strategy-opt k=...) or another strategy")
        self.ops = nn.ModuleDict({c: build_op(c, c_in // k, c_out // k, g.args) for c in g.candidates})
        self.act = activation(g.act)

    def forward(self, x: Tensor, weights: Tensor, active: list[int] | None = None) -> Tensor:
        k = self.k
        if k == 1:
            return self.act(self._mixed(x, weights, active))
        share = x.shape[1] // k
        # One split (not two slices): its backward writes both gradients into one tensor
        # instead of two full-size zero-filled ones that are then added.
        part, bypass = x.split([share, x.shape[1] - share], dim=1)
        out = self._mixed(part, weights, active)
        if out.shape[2:] != bypass.shape[2:]:
            # A reducing edge: ceil_mode matches the candidates' ceil(H / stride) at odd sizes.
            stride = -(-bypass.shape[2] // out.shape[2])
            bypass = torch.nn.functional.max_pool2d(bypass, stride, stride, ceil_mode=True)
        return self.act(shuffled_concat(out, bypass, k, _is_channels_last(x)))

    def _mixed(self, x: Tensor, weights: Tensor, active: list[int] | None) -> Tensor:
        ops = list(self.ops.values())
        if active is None:
            return sum(w * op(x) for w, op in zip(weights, ops))
        return sum(weights[i] * ops[i](x) for i in active)


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


def partial_mixed_op(k: int) -> str:
    """The MIXED_OPS name of partial channels with K = k, registered on first use."""
    name = f"partial-k{k}"
    if name not in MIXED_OPS:
        register_mixed_op(name)(type(f"PartialMixedOpK{k}", (PartialMixedOp,), {"k": k}))
    return name
