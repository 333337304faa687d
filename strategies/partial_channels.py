"""PC-DARTS' partial channel connections as a mixed-op implementation ("partial-k4", ...).

A 1/K share of the input's channels goes through the candidates (weighted as any mixed op
weights them), the rest bypasses them, and the two are concatenated and channel-shuffled
(K groups), so the next mixed op sees a different share. The candidates are built for
C/K channels: a K times cheaper search. K = 1 is the plain mixed op exactly (same
parameters, same order of construction, identity shuffle).
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
        share = x.shape[1] // k
        part, bypass = x[:, :share], x[:, share:]
        ops = list(self.ops.values())
        if active is None:
            out = sum(w * op(part) for w, op in zip(weights, ops))
        else:
            out = sum(weights[i] * ops[i](part) for i in active)
        if k > 1:
            out = channel_shuffle(torch.cat([out, bypass], dim=1), k)
        return self.act(out)


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
