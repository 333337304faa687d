"""`nasflow profile`: measure every candidate of every decision, and every fixed node, at the
shapes the space gives them at the deployment size, and write a latency table.

    table = profile_space(graph, input_size=(360, 640), runner=Runner("eager"), threads=2)
    table.save("dlsr-latency.json")

Each node is timed as the derived model runs it: a choice node's candidate as the op node a
derivation makes of it (op + activation), a dense node's candidate input as its op on k
copies of that input (its time divided by k, see search/decision_costs.py), a combine node
with its inputs. Nodes that compute the same thing at the same shapes (DLSR's six cells)
are timed once.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nasflow.compile.supernet import Combine, DenseEdge, FixedOp
from nasflow.errors import NasflowError
from nasflow.hardware.timing import Runner, threads as using_threads, time_call
from nasflow.search.decision_costs import decision_of, option_node
from nasflow.search.latency_table import LatencyTable, Machine, NodeEntry, Timing, current_machine, now, signature
from nasflow.space.graph import GNode, Graph

Progress = Callable[[int, int, str], None]  # (done, total, what is being timed)


class _Node(nn.Module):
    """One node of a derived model, called on its inputs as positional tensors."""

    def __init__(self, g: GNode) -> None:
        super().__init__()
        self.kind = g.kind
        self.inner = {"op": FixedOp, "dense": DenseEdge, "combine": Combine}[g.kind](g)

    def forward(self, *xs: Tensor) -> Tensor:
        if self.kind == "op":
            return self.inner(xs[0])
        if self.kind == "dense":
            return self.inner(list(xs), None)
        return self.inner(list(xs))


@dataclass
class Probe:
    node: str
    option: str | None  # None: a node without a decision
    derived: GNode  # what is run
    divide: int  # the time is divided by this (a dense candidate: k)
    shapes: list[tuple[int, int, int, int]]
    key: str  # equal keys compute the same thing: timed once

    def build(self, seed: int = 0) -> tuple[nn.Module, list[Tensor]]:
        torch.manual_seed(seed)
        module = _Node(self.derived)
        g = torch.Generator().manual_seed(seed)
        return module, [torch.rand(s, generator=g) for s in self.shapes]


def probes(graph: Graph, input_size: tuple[int, int]) -> list[Probe]:
    """What to time for each node (and each option of a node that reads a decision)."""
    out = []
    for g in graph.nodes.values():
        if g.kind == "input":
            continue
        label = decision_of(graph, g)
        options: list[str | None] = list(graph.decisions[label].options) if label else [None]
        for option in options:
            if g.kind == "choice" and option is None:
                raise NasflowError(f"choice node '{g.name}' reads no decision; the space is inconsistent")
            node, k = option_node(graph, g, option)
            shapes = [_shape(graph, i, c, input_size) for i, c in zip(node.inputs, node.c_in)]
            key = f"{signature(graph, node)}|{shapes}|{k}"
            out.append(Probe(g.name, option, node, k, shapes, key))
    return out


def _shape(graph: Graph, name: str, channels: int, input_size: tuple[int, int]) -> tuple[int, int, int, int]:
    rel = graph.nodes[name].size
    return 1, channels, int(input_size[0] * rel), int(input_size[1] * rel)


def profile_space(graph: Graph, input_size: tuple[int, int], runner: Runner | None = None,
                  threads: int | None = None, warmup: int = 2, reps: int = 7,
                  progress: Progress | None = None) -> LatencyTable:
    """Time every node's options of `graph` (a space or a derived architecture) on inputs of
    `input_size` (h, w: the deployment size, not the training patch)."""
    runner = runner or Runner()
    todo = probes(graph, input_size)
    timed: dict[str, Timing] = {}
    unique = list(dict.fromkeys(p.key for p in todo))
    with using_threads(threads):
        for i, key in enumerate(unique):
            probe = next(p for p in todo if p.key == key)
            if progress is not None:
                progress(i, len(unique), f"{probe.node}" + (f" {probe.option}" if probe.option else ""))
            module, inputs = probe.build()
            timed[key] = time_call(runner.prepare(module, inputs), warmup, reps)
        n_threads = torch.get_num_threads()
    if progress is not None:
        progress(len(unique), len(unique), "done")
    nodes: dict[str, NodeEntry] = {}
    for p in todo:
        t = timed[p.key]
        share = Timing(ms=t.ms / p.divide, spread=t.spread / p.divide)
        g = graph.nodes[p.node]
        entry = nodes.setdefault(p.node, NodeEntry(kind=g.kind, signature=signature(graph, g),
                                                   label=decision_of(graph, g)))
        if p.option is None:
            entry.timing = share
        else:
            entry.options[p.option] = share
    factor = graph.nodes[graph.output].size
    machine = current_machine("cuda" if runner.device.startswith("cuda") else "cpu")
    assert machine is not None  # Runner checked the device exists
    return LatencyTable(
        space=graph.space.name, params=dict(graph.space.params),
        machine=Machine(kind=machine["kind"], name=machine["name"], threads=n_threads,
                        torch=torch.__version__, backend=runner.backend, dtype=runner.dtype),
        input_size=input_size, output_size=(int(input_size[0] * factor), int(input_size[1] * factor)),
        warmup=warmup, reps=reps, created=now(), nodes=nodes)
