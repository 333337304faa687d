"""`nasflow profile`: measure every candidate of every decision, and every fixed node, at the
shapes the space gives them at the deployment size, and write a latency table.

    table = profile_space(graph, input_size=(360, 640), runner=Runner("eager"), threads=2)
    table.save("dlsr-latency.json")

Each node is timed as the derived model runs it: a choice node's candidate as the op node a
derivation makes of it (op + activation), a dense node's candidate input as its op on k
copies of that input (its time divided by k, see search/decision_costs.py), a combine node
with its inputs. Nodes that compute the same thing at the same shapes (DLSR's six cells)
are timed once.

Calibration (`calibrate` > 0, the CLI's default 2): that many derived architectures (random,
on a seed the check never uses; the graph itself when it has no choices) are timed end to end
in the same interleaved rounds as the nodes, and the table's `node_overhead_ms` is the
median over them of (whole network - sum of its nodes) / node count: what a network pays
per node beyond its parts (calls, threads woken, caches), measured, not fitted to the check.
"""
from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nasflow.compile.supernet import Combine, DenseEdge, FixedOp
from nasflow.compile.values import concrete
from nasflow.errors import NasflowError
from nasflow.hardware.archs import CALIBRATION_SEED, end_to_end, random_architectures
from nasflow.hardware.timing import CLOCKS, Runner, threads as using_threads, time_interleaved
from nasflow.search.decision_costs import decision_of, option_node
from nasflow.search.latency_table import (LatencyTable, Machine, NodeEntry, Timing, ValueEntry, current_machine, now,
                                          run_nodes, signature, values_key)
from nasflow.space.graph import GNode, Graph
from nasflow.space.values import deps_of

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
    values: str | None = None  # the value decisions' values it is timed at (latency_table.values_key)
    values_signature: str = ""  # the node's signature at those values
    value_deps: list[str] | None = None  # the value decisions the node's shapes read

    def build(self, seed: int = 0) -> tuple[nn.Module, list[Tensor]]:
        torch.manual_seed(seed)
        module = _Node(self.derived)
        g = torch.Generator().manual_seed(seed)
        return module, [torch.rand(s, generator=g) for s in self.shapes]


def probes(graph: Graph, input_size: tuple[int, int]) -> list[Probe]:
    """What to time for each node (and each option of a node that reads a decision)."""
    top = {k: max(d.values) for k, d in graph.value_decisions.items()}
    out = []
    for g in graph.nodes.values():
        if g.kind == "input":
            continue
        label = decision_of(graph, g)
        options: list[str | None] = list(graph.decisions[label].options) if label else [None]
        deps = sorted(deps_of(g.c_in, g.c_out, g.args))  # a searched width or kernel: every value
        for values in itertools.product(*(graph.decisions[d].values for d in deps)):
            a = {**top, **dict(zip(deps, values))}
            at_values = concrete(g, a) if deps else g
            for option in options:
                if g.kind == "choice" and option is None:
                    raise NasflowError(f"choice node '{g.name}' reads no decision; the space is inconsistent")
                node, k = option_node(graph, at_values, option)
                shapes = [_shape(graph, i, c, input_size) for i, c in zip(node.inputs, node.c_in)]
                key = f"{signature(graph, node)}|{shapes}|{k}"
                out.append(Probe(g.name, option, node, k, shapes, key, values_key(deps, a) if deps else None,
                                 signature(graph, at_values), deps))
    return out


def _shape(graph: Graph, name: str, channels: int, input_size: tuple[int, int]) -> tuple[int, int, int, int]:
    rel = graph.nodes[name].size
    return 1, channels, int(input_size[0] * rel), int(input_size[1] * rel)


def profile_space(graph: Graph, input_size: tuple[int, int], runner: Runner | None = None,
                  threads: int | None = None, warmup: int = 2, reps: int = 7,
                  progress: Progress | None = None, calibrate: int = 0) -> LatencyTable:
    """Time every node's options of `graph` (a space or a derived architecture) on inputs of
    `input_size` (h, w: the deployment size, not the training patch), in `reps` interleaved
    rounds; with `calibrate` > 0, also that many whole derived architectures, for the
    table's per-node overhead."""
    runner = runner or Runner()
    todo = probes(graph, input_size)
    unique: dict[str, Probe] = {}
    for p in todo:
        unique.setdefault(p.key, p)  # equal keys compute the same thing: timed once
    calibration = _calibration_archs(graph, calibrate)
    with using_threads(threads):
        calls = {}
        for i, (key, probe) in enumerate(unique.items()):
            if progress is not None:
                progress(i, len(unique), f"preparing {probe.node}" + (f" {probe.option}" if probe.option else ""))
            module, inputs = probe.build()
            calls[key] = runner.prepare(module, inputs)
        for i, derived in enumerate(calibration):
            calls[f"calibration {i}"] = end_to_end(derived, input_size, runner, seed=i)
        timed = time_interleaved(calls, warmup, reps, clock=CLOCKS[runner.clock], progress=None if progress is None else (
            lambda r, n: progress(r, n, f"round {r + 1} of {n}" if r < n else "done")))
        n_threads = torch.get_num_threads()
    table = LatencyTable(
        space=graph.space.name, params=dict(graph.space.params), values=dict(graph.space.values),
        machine=_machine(runner, n_threads), input_size=input_size,
        output_size=_output_size(graph, input_size), warmup=warmup, reps=reps, created=now(),
        nodes=assemble(graph, todo, timed))
    if calibration:
        per_node = []
        for i, derived in enumerate(calibration):
            parts, _ = table.predict(derived)
            per_node.append((timed[f"calibration {i}"].ms - parts) / run_nodes(derived))
        table.node_overhead_ms = statistics.median(per_node)
        table.calibrated_on = len(calibration)
    return table


def assemble(graph: Graph, todo: list[Probe], timed: dict[str, Timing]) -> dict[str, NodeEntry]:
    """The table's node entries from the probes' timings (a dense candidate's divided by k)."""
    nodes: dict[str, NodeEntry] = {}
    for p in todo:
        t = timed[p.key]
        share = Timing(ms=t.ms / p.divide, spread=t.spread / p.divide)
        g = graph.nodes[p.node]
        entry = nodes.setdefault(p.node, NodeEntry(kind=g.kind, signature=signature(graph, g),
                                                   label=decision_of(graph, g), value_deps=p.value_deps or []))
        targets: list[NodeEntry | ValueEntry] = [entry]
        if p.values is not None:  # at these values; the entry's own fields are the largest values'
            at_values = entry.at_values.setdefault(p.values, ValueEntry(signature=p.values_signature))
            mine = {k: v for k, v in (x.split("=") for x in p.values.split(","))}
            largest = all(int(v) == max(graph.decisions[k].values) for k, v in mine.items())
            targets = [at_values, entry] if largest else [at_values]
        for e in targets:
            if p.option is None:
                e.timing = share
            else:
                e.options[p.option] = share
    return nodes


def _calibration_archs(graph: Graph, n: int) -> list[Graph]:
    if n < 0:
        raise NasflowError(f"--calibrate must be 0 or more, got {n}")
    if n == 0:
        return []
    return random_architectures(graph, n, CALIBRATION_SEED) if graph.decisions else [graph]


def _machine(runner: Runner, n_threads: int) -> Machine:
    machine = current_machine("cuda" if runner.device.startswith("cuda") else "cpu")
    assert machine is not None  # Runner checked the device exists
    return Machine(kind=machine["kind"], name=machine["name"], threads=n_threads,
                   torch=torch.__version__, backend=runner.backend, dtype=runner.dtype, clock=runner.clock)


def _output_size(graph: Graph, input_size: tuple[int, int]) -> tuple[int, int]:
    factor = graph.nodes[graph.output].size
    return int(input_size[0] * factor), int(input_size[1] * factor)
