"""The fused mixed op: the same parameters as the plain MixedOp, computed in fewer,
larger kernels. Results equal the plain path up to float rounding (tests: 1e-4 relative).

- Candidates linear in the same input (conv 1x1 .. 7x7) are one conv with the
  softmax-weighted sum of their kernels, zero-padded to the largest size: a 7x7 conv
  instead of 1x1 + 3x3 + 5x5 + 7x7 (49 instead of 84 multiply-adds per weight pair); its
  arch gradient needs only the kernel gradient's centre (nasflow.accel.merged_conv).
- The ReLU that opens every separable and dilated candidate is computed once.
- The last pointwise convs of the separable and dilated candidates take each candidate's
  weight into their kernels and sum in place into one output: no per-candidate product, no
  concat.
- Depthwise convs differentiate through nasflow.depthwise, whose CPU backward avoids
  oneDNN's slow paths (5x5, 7x7 and dilated kernels).
- Anything else (identity, user ops) runs on its own, as in the plain path.

Registered as the mixed-op implementation "fused" when nasflow.accel is imported. Given a
subset of active candidates (a sparse relaxation), it computes those alone, as "plain" does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nasflow.accel.depthwise import depthwise_conv
from nasflow.space.graph import GNode
from nasflow.accel.merged_conv import merged_conv
from nasflow.ops.registry import OPS
from nasflow.compile.mixed_ops import MixedOp, register_mixed_op


@register_mixed_op("fused")
class FusedMixedOp(MixedOp):
    """State-dict compatible with MixedOp; only `mix` differs."""

    def __init__(self, g: GNode) -> None:
        super().__init__(g)
        families = {c: OPS.get(c).family for c in g.candidates}
        groups: dict[str, list[int]] = {"conv": [], "sep": [], "dil": []}
        self.others: list[int] = []
        for i, cand in enumerate(g.candidates):
            fam = families[cand]
            (groups[fam[0]] if fam else self.others).append(i)
        self.conv_idx, self.sep_idx, self.dil_idx = groups["conv"], groups["sep"], groups["dil"]
        self._mods = list(self.ops.values())

    def mix(self, x: Tensor, weights: Tensor, active: list[int] | None = None) -> Tensor:
        """MixedOp.mix (the sum before the activation, which MixedOp.forward applies)."""
        if active is not None and len(active) < len(self._mods):
            return super().mix(x, weights, active)  # a sampled few: no kernel to merge
        out: Tensor | None = None
        if self.conv_idx:
            out = self._convs(x, weights)
        if self.sep_idx or self.dil_idx:
            r = F.relu(x)
            hs, kernels = self._separable(r)
            dil_hs, dil_kernels = self._dilated(r)
            # The separable and dilated candidates' last pointwise convs sum into one output.
            p = self._weighted_pointwise(hs + dil_hs, kernels + dil_kernels, weights[self.sep_idx + self.dil_idx])
            out = p if out is None else out + p
        for i in self.others:
            o = weights[i] * self._mods[i](x)
            out = o if out is None else out + o
        assert out is not None, "a choice node has candidates"
        return out

    def _convs(self, x: Tensor, w: Tensor) -> Tensor:
        convs = [self._mods[i] for i in self.conv_idx]
        out = merged_conv(x, w[self.conv_idx], [m.weight for m in convs])
        biases = [(w[i] * m.bias) for i, m in zip(self.conv_idx, convs) if m.bias is not None]
        return out + torch.stack(biases).sum(0).view(1, -1, 1, 1) if biases else out

    def _separable(self, r: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Each separable candidate up to its last pointwise conv, and that conv's kernel.
        Depthwise convs stay per candidate: batching them (padded, stacked) is slower on
        CPU, whose depthwise backward is the costly part, and DLSR's separable candidates
        (3x3, 5x5, 7x7) share no kernel size, so there is no unpadded batch to form."""
        hs, kernels = [], []
        for i in self.sep_idx:
            s = self._mods[i]
            h = F.relu(F.conv2d(depthwise_conv(r, s[1].weight), s[2].weight))
            hs.append(depthwise_conv(h, s[4].weight))
            kernels.append(s[5].weight)
        return hs, kernels

    def _dilated(self, r: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Each dilated candidate's depthwise conv, and its pointwise conv's kernel."""
        hs, kernels = [], []
        for i in self.dil_idx:
            dw = self._mods[i][1]
            hs.append(depthwise_conv(r, dw.weight, dw.dilation[0]))
            kernels.append(self._mods[i][2].weight)
        return hs, kernels

    @staticmethod
    def _weighted_pointwise(hs: list[Tensor], kernels: list[Tensor], w: Tensor) -> Tensor:
        """sum_j w_j * pointwise_j(h_j): each candidate's weight folded into its kernel, the
        convs summed in place into the first one's output. A concat of the h_j feeding one
        conv did the same arithmetic but copied every h_j in, and its backward handed each
        depthwise conv a channel slice to copy out again: 1-2% slower a DLSR step."""
        out = F.conv2d(hs[0], w[0] * kernels[0])
        for h, k, wj in zip(hs[1:], kernels[1:], w[1:]):
            out = out.add_(F.conv2d(h, wj * k))  # conv2d keeps no output for its backward
        return out
