"""FLOPs of a search step, a training step or an inference, from nasflow's exact cost model
(nasflow/space/cost.py: Multi-Adds per node and candidate at a size; 1 Multi-Add = 2 FLOPs).

    flops = step_flops(graph, (32, 32), batch=16, passes=strategy_passes("milenas"))
    flops.total            # FLOPs of one step: every candidate, forward and backward

A supernet's forward computes every candidate of every mixed op, so a pass's forward is the
graph's Multi-Adds with all candidates (graph_cost), times the batch. Its backward is counted
node by node, as autograd runs it:

- the kernel gradient (dW) of every op with weights, in a pass that updates the weights: as
  many Multi-Adds as its forward (a conv's dW is the same sum over the same products; its
  bias gradient, a sum over the output, matches the forward's bias add);
- the input gradient (dX) of an op whose input depends on something the pass differentiates
  (weights in a weights pass; alpha, beta or value weights in an arch pass): counted as its
  forward's Multi-Adds (it has no bias add: an overcount of 1 in k*k*c_in/groups of that
  term). Autograd skips the rest: the first conv's dX (its input is the data) and, in an
  arch pass (torch.autograd.grad on the arch parameters), every dW and every dX upstream of
  the first decision.

So a weights pass costs 3x forward, an arch pass about 2x (a bit less: the ops before the
first decision run forward only). Activations, pooling, resizing, normalisation, the mixed
op's weighted sum, the loss and the optimizers are not counted, as the cost model does not
count them: the FLOPs are the useful arithmetic of the network, not what a kernel executes
(a fused mixed op that merges the candidates into one zero-padded kernel executes more).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nasflow.errors import NasflowError
from nasflow.space.cost import CostReport, graph_cost
from nasflow.space.graph import Graph
from nasflow.space.values import deps_of

# What a pass differentiates: "forward" nothing (inference), "weights" the weights
# (loss.backward(inputs=weights)), "arch" the arch parameters (autograd.grad on them),
# "weights+arch" both in one backward (MiLeNAS' reuse_forward).
PASS_KINDS = ("forward", "weights", "arch", "weights+arch")


def strategy_passes(strategy: str, reuse_forward: bool = False) -> list[str]:
    """The passes of one search step of `strategy` (after warm-up)."""
    if strategy == "milenas":  # weights step, grad_A L_train, grad_A L_val (strategies/milenas.py)
        return ["weights+arch", "arch"] if reuse_forward else ["weights", "arch", "arch"]
    if strategy == "darts":  # weights step, then grad_A L_val (first order)
        return ["weights", "arch"]
    raise NasflowError(f"no FLOP count for strategy '{strategy}': its passes are known for milenas and darts "
                       "(nasflow/hardware/flops.py strategy_passes)")


@dataclass
class StepFlops:
    """FLOPs of one step (every pass, the batch included), split by what computes them."""

    forward: int
    input_grad: int
    weight_grad: int
    passes: tuple[str, ...]

    @property
    def total(self) -> int:
        return self.forward + self.input_grad + self.weight_grad


def _upstream_of(graph: Graph, holds: set[str]) -> set[str]:
    """Nodes whose input depends on a node in `holds` (a node reading one, or reading a node
    that does), in the graph's topological order."""
    depends: set[str] = set()
    for name in graph.nodes:
        g = graph.nodes[name]
        if any(i in holds or i in depends for i in g.inputs):
            depends.add(name)
    return depends


def step_flops(graph: Graph, input_size: tuple[int, int], batch: int, passes: Sequence[str],
               report: CostReport | None = None) -> StepFlops:
    """FLOPs of one step of `passes` on a batch of `batch` inputs of `input_size` (h, w)."""
    bad = [p for p in passes if p not in PASS_KINDS]
    if bad:
        raise NasflowError(f"unknown pass {bad[0]!r}: one of {', '.join(PASS_KINDS)}")
    report = report if report is not None else graph_cost(graph, input_size)
    madds: dict[str, int] = {}
    weighted: set[str] = set()  # nodes with weights
    arch: set[str] = {n for d in graph.decisions.values() for n in d.nodes}
    for r in report.rows:
        madds[r.node] = madds.get(r.node, 0) + int(r.madds)
        if int(r.params) > 0:
            weighted.add(r.node)
        if deps_of(r.params, r.madds):  # a value decision's weights: masked by arch parameters
            arch.add(r.node)
    forward = sum(madds.values())
    after_weights, after_arch = _upstream_of(graph, weighted), _upstream_of(graph, arch)
    fwd = dx = dw = 0
    for p in passes:
        fwd += forward
        if p in ("weights", "weights+arch"):
            dw += sum(madds[n] for n in weighted)
        needs_dx = {"forward": set(), "weights": after_weights, "arch": after_arch,
                    "weights+arch": after_weights | after_arch}[p]
        dx += sum(m for n, m in madds.items() if n in needs_dx)
    return StepFlops(2 * batch * fwd, 2 * batch * dx, 2 * batch * dw, tuple(passes))


def inference_flops(graph: Graph, input_size: tuple[int, int], batch: int = 1) -> int:
    """FLOPs of one forward of a built model (2 x its Multi-Adds at `input_size`)."""
    return 2 * batch * graph_cost(graph, input_size).madds
