"""The FLOPs of a search step (nasflow/hardware/flops.py) against counts made independently of
the cost model: the convs' Multi-Adds seen by forward hooks, and every conv forward and
backward that a real strategy step dispatches, with the gradients autograd asked of each
(torch's own FlopCounterMode would do, but in torch 2.13 it counts a depthwise conv's kernel
gradient as a dense one's: C times too many)."""
from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import nasflow
from nasflow.compile.supernet import compile_graph
from nasflow.errors import NasflowError
from nasflow.hardware.flops import inference_flops, step_flops, strategy_passes
from nasflow.search.config import SearchConfig
from nasflow.strategies import get_strategy

SIZE = (8, 8)
BATCH = 2


def tiny_graph() -> Any:
    # stem -> a conv before any decision -> a mixed op -> a dense edge -> head: the ops before
    # the first decision are where an arch pass's backward stops.
    space = nasflow.Space(name="tiny", params={"C": 4}, inputs={"x": 3}, nodes={
        "stem": nasflow.op("conv_3x3", "x", out="C"),
        "pre": nasflow.op("conv_1x1", "stem", out="C"),
        "m": nasflow.choice(["conv_1x1", "conv_3x3", "sep_conv_3x3", "identity"], "pre"),
        "e": nasflow.dense(["pre", "m"], topk=1, merge="sum"),
        "post": nasflow.op("conv_3x3", "e", out="C"),
        "head": nasflow.op("conv_1x1", "post", out=3),
    }, output="head")
    return nasflow.build_graph(space)


def conv_madds_by_hooks(model: nn.Module, x: torch.Tensor) -> int:
    total = 0

    def hook(mod: nn.Module, args: Any, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, nn.Conv2d)
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total += out.numel() * (mod.in_channels // mod.groups) * k + (out.numel() if mod.bias is not None else 0)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


def test_forward_flops_are_every_candidates_conv_multiadds() -> None:
    graph = tiny_graph()
    torch.manual_seed(0)
    supernet = compile_graph(graph, fuse=False)
    x = torch.rand(BATCH, 3, *SIZE)
    counted = step_flops(graph, SIZE, BATCH, ["forward"])
    assert counted.input_grad == counted.weight_grad == 0
    assert counted.total == 2 * conv_madds_by_hooks(supernet, x) > 0
    assert inference_flops(graph, SIZE, BATCH) == counted.total


class ConvFlops(TorchDispatchMode):
    """FLOPs of every conv an autograd step runs, from the shapes it runs on: forward, and
    each gradient (input, kernel) the backward's output mask asks for, each as many
    Multi-Adds as the forward that made the output."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.convolution.default:
            w = args[1]
            self.flops += 2 * out.numel() * w[0].numel()  # c_in / groups * kh * kw per output value
        elif func is torch.ops.aten.convolution_backward.default:
            grad_out, w, mask = args[0], args[2], args[-1]
            self.flops += 2 * grad_out.numel() * w[0].numel() * (int(mask[0]) + int(mask[1]))
        return out


def flops_of_a_step(strategy: str, options: dict[str, Any]) -> int:
    graph = tiny_graph()
    torch.manual_seed(0)
    model = compile_graph(graph, fuse=False).train()
    config = SearchConfig(strategy=strategy, strategy_options=options, fuse=False, channels_last=False,
                          batch_size=BATCH, warmup=0, steps=2, device="cpu")

    def loss(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        return F.mse_loss(net(batch[0]), batch[1]), {}

    w_opt = torch.optim.SGD(model.weights(), lr=0.01)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=0.01)
    step = get_strategy(strategy)(loss, None, w_opt, a_opt, config)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.rand(BATCH, 3, *SIZE, generator=g), torch.rand(BATCH, 3, *SIZE, generator=g)) for _ in range(2)]
    with ConvFlops() as counter:
        step.step(model, batches[0], batches[1])
    return counter.flops


@pytest.mark.parametrize("strategy,options", [
    ("milenas", {}), ("milenas", {"reuse_forward": True}), ("darts", {})])
def test_step_flops_equal_torchs_count_of_a_real_step(strategy: str, options: dict[str, Any]) -> None:
    graph = tiny_graph()
    passes = strategy_passes(strategy, options.get("reuse_forward", False))
    assert step_flops(graph, SIZE, BATCH, passes).total == flops_of_a_step(strategy, options)


def test_backward_is_counted_as_autograd_runs_it() -> None:
    graph = tiny_graph()
    fwd = step_flops(graph, SIZE, BATCH, ["forward"]).total
    weights = step_flops(graph, SIZE, BATCH, ["weights"])
    arch = step_flops(graph, SIZE, BATCH, ["arch"])
    assert weights.weight_grad == fwd  # every op here has weights
    assert fwd / 2 < weights.input_grad < fwd  # the stem's input gradient is never computed
    assert arch.weight_grad == 0 and 0 < arch.input_grad < weights.input_grad  # nor stem's, pre's
    with pytest.raises(NasflowError, match="unknown pass 'both'"):
        step_flops(graph, SIZE, BATCH, ["both"])
    with pytest.raises(NasflowError, match="no FLOP count for strategy 'gdas'"):
        strategy_passes("gdas")
