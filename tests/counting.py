"""Multi-Adds by counting what a module runs, to check the cost model against."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode


def counted_madds(module: nn.Module, *inputs: Tensor) -> int:
    """torch's flop counter (2 flops per multiply-add) plus one add per output value of each
    conv or linear layer with a bias, which the flop counter leaves out."""
    bias_adds = [0]

    def hook(m: nn.Module, _: object, out: Tensor) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            bias_adds[0] += out.numel()

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2 + bias_adds[0]
