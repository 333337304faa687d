"""What nasflow's custom autograd Functions (depthwise.py, merged_conv.py) share."""
from __future__ import annotations

from typing import Any

import torch


def wanted(ctx: Any, i: int) -> bool:
    """Whether this backward needs the gradient of input i. needs_input_grad only says the
    input requires grad; a backward with `inputs=` (the arch steps: alpha, not the weights)
    may not need it, which built-in ops know from the engine and a custom Function must ask."""
    if not ctx.needs_input_grad[i]:
        return False
    node = ctx.next_functions[i][0]
    will_run = getattr(torch._C, "_will_engine_execute_node", None)  # torch.autograd.graph uses it
    if node is None or will_run is None:
        return True
    try:
        return bool(will_run(node))
    except RuntimeError:  # a leaf that autograd.grad() was asked for: it is wanted
        return True
