"""PC-DARTS (Xu et al., "PC-DARTS: Partial Channel Connections for Memory-Efficient
Architecture Search", ICLR 2020): first-order DARTS over partial channel connections.

Each mixed op computes its candidates on a 1/K share of the channels and bypasses the rest
(strategies/partial_channels.py: the "partial-kK" mixed op, "partial-kK-fused" when the
search fuses), with a channel shuffle after.
Edge normalization, PC-DARTS' second half, is nasflow's dense-node beta: the inputs of a
dense node are weighted by softmax(beta) in the search and the top-k derived, as in DARTS.
With K = 1 this is first-order DARTS on the same space exactly.
"""
from __future__ import annotations

from pydantic import Field

from .base import register_strategy
from .darts import Darts
from .options import StrategyOptions
from .partial_channels import partial_mixed_op


class PCDARTSOptions(StrategyOptions):
    k: int = Field(4, ge=1, description="1/k of the channels go through the mixed op, the rest bypass it")


@register_strategy("pcdarts")
class PCDARTS(Darts):
    """PC-DARTS: 1/K of the channels through each mixed op, the rest bypassed and shuffled."""

    Options = PCDARTSOptions
    options: PCDARTSOptions

    def mixed_op(self) -> str:
        # Partial channels over the fused kernels when the search fuses (its default).
        return partial_mixed_op(self.options.k, fused=self.config.fuse)
