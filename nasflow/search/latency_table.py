"""The latency table: what each candidate of each decision, and each fixed node, takes on one
machine (written by `nasflow profile`, read by the latency regularizer, budgets and
`nasflow cost`).

A table is JSON, stamped with the machine (device kind and model, threads, torch version,
backend, dtype) and the deployment size it was measured at. Each node of the space has an
entry with its signature (kind, ops, channels, arguments, relative size: everything but
the image size), so a table from another space, other params or other candidates is found
stale, while a table measured at a deployment size other than the training patch is normal:
the size is what the user deploys at, not what the search trains on.

A node whose shapes value decisions set (a searched width, a kernel size) is timed at every
combination of the values it reads: `at_values` holds each one's timings under a key
`C=16,esa_f=4`, with its signature, so the latency regularizer and budgets price every value
exactly (a ValueCost per node), and a derived architecture finds its nodes' entries by their
signature at its values. The entry's own `timing` / `options` are those at the largest values.

A whole network pays a little more (or less) than the sum of its nodes timed one by one: a
call per node, threads woken per call, caches warm or cold. `node_overhead_ms` is that
difference per node, measured when profiling on whole derived architectures timed
interleaved with the nodes (nasflow/hardware/profile.py); the prediction of an architecture
is the sum of its nodes' entries plus the overhead times its node count.
"""
from __future__ import annotations

import datetime
import itertools
import json
import os
import platform
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nasflow.errors import NasflowError
from nasflow.runs.durable import write_atomic
from nasflow.search.decision_costs import DecisionCosts, ValueCost, decision_of, split_by_decision
from nasflow.space.graph import GNode, Graph
from nasflow.space.values import Sym, at, deps_of

FORMAT = "nasflow-latency-table/1"


class LatencyTableError(NasflowError, ValueError):
    """A latency table is malformed, stale (another space) or from another machine."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Timing(_Model):
    ms: float = Field(ge=0, allow_inf_nan=False)  # median over the repetitions
    spread: float = Field(ge=0, allow_inf_nan=False)  # interquartile range, ms


class Machine(_Model):
    kind: Literal["cpu", "cuda"]
    name: str  # CPU model or GPU name: what makes a table foreign
    threads: int = Field(ge=1)
    torch: str
    backend: str
    dtype: str
    clock: Literal["wall", "cpu"] = "wall"  # cpu: the process's CPU time (nasflow/hardware/timing.py)


class ValueEntry(_Model):
    """A node's timings at one combination of the value decisions its shapes read."""

    signature: str  # the node's signature at those values
    timing: Timing | None = None
    options: dict[str, Timing] = {}


class NodeEntry(_Model):
    kind: str
    signature: str
    label: str | None = None  # the decision the node reads
    timing: Timing | None = None  # a node without a decision
    options: dict[str, Timing] = {}  # candidate op (choice) or candidate input (dense) -> timing
    value_deps: list[str] = []  # the value decisions the node's shapes read (sorted)
    at_values: dict[str, ValueEntry] = {}  # values_key(...) -> the timings at those values

    def at(self, signature: str) -> ValueEntry | NodeEntry | None:
        """The timings whose signature is `signature` (a derived node at its values)."""
        if not self.value_deps:
            return self if self.signature == signature else None
        return next((e for e in self.at_values.values() if e.signature == signature), None)


def values_key(deps: list[str], values: dict[str, int]) -> str:
    """`C=16,esa_f=4`: a node's entry for these values of the decisions it reads."""
    return ",".join(f"{d}={values[d]}" for d in deps)


class LatencyTable(_Model):
    format: Literal["nasflow-latency-table/1"] = FORMAT
    space: str
    params: dict[str, int]
    values: dict[str, list[int]] = {}  # the space's value decisions, each timed at every value
    machine: Machine
    input_size: tuple[int, int]  # h, w of the space's inputs at deployment
    output_size: tuple[int, int]
    warmup: int
    reps: int
    created: str
    nodes: dict[str, NodeEntry]
    # what a whole network pays per node beyond its nodes timed alone (ms; may be negative),
    # measured on `calibrated_on` derived architectures; 0 when not calibrated
    node_overhead_ms: float = Field(default=0.0, allow_inf_nan=False)
    calibrated_on: int = Field(default=0, ge=0)

    # --- files -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.model_dump(), indent=1) + "\n"
        write_atomic(out, lambda tmp: tmp.write_text(text))  # a full disk: named, no partial table left
        return out

    @property
    def fixed_ms(self) -> float:
        return sum(e.timing.ms for e in self.nodes.values() if e.timing is not None)

    # --- checks ----------------------------------------------------------------------------
    def check_space(self, graph: Graph, where: str = "the latency table") -> None:
        """LatencyTableError unless every node of `graph` (a supernet or a derived architecture
        of the profiled space) has its entry with the same signature and options."""
        fix = f"profile this space again: nasflow profile SPACE -o TABLE.json{_sets(graph)}"
        if graph.value_decisions and dict(graph.space.values) != self.values:
            raise LatencyTableError(f"{where} was profiled with value decisions {self.values or 'none'}, the space "
                                    f"has {dict(graph.space.values)}; {fix}")
        if graph.decisions and graph.space.name != self.space:
            raise LatencyTableError(f"{where} was profiled for space '{self.space}', not "
                                    f"'{graph.space.name}'; {fix}")
        for g in graph.nodes.values():
            if g.kind == "input":
                continue
            entry = self.nodes.get(g.name)
            if entry is None:
                raise LatencyTableError(f"{where} has no entry for node '{g.name}' (profiled with params "
                                        f"{_params(self.params)}); {fix}")
            want = self._wanted(graph, g, entry)
            if entry.value_deps and not deps_of(g.c_in, g.c_out, g.args):  # a derived node at its values
                if entry.at(want) is None:
                    raise LatencyTableError(f"{where} has no timing of node '{g.name}' at its values "
                                            f"(timed at {', '.join(entry.at_values)}); {fix}")
                continue
            if want != entry.signature:
                raise LatencyTableError(f"{where} is stale at node '{g.name}': {_difference(entry.signature, want)} "
                                        f"(the space's params {_params(graph.space.params)}, the table's "
                                        f"{_params(self.params)}); {fix}")
            label = decision_of(graph, g)
            if entry.timing is None and not entry.options and not entry.value_deps:
                raise LatencyTableError(f"{where} has no timing for node '{g.name}' (its entry's timing is null); {fix}")
            if label is not None:
                options = list(graph.decisions[label].options)
                if list(entry.options) != options:
                    raise LatencyTableError(f"{where} is stale at node '{g.name}': options "
                                            f"{list(entry.options)}, the space has {options}; {fix}")
        if graph.decisions:
            extra = sorted(set(self.nodes) - set(graph.nodes))
            if extra:
                raise LatencyTableError(f"{where} is stale: it has node(s) {', '.join(extra[:5])} that space "
                                        f"'{graph.space.name}' has not; {fix}")

    def _wanted(self, graph: Graph, g: GNode, entry: NodeEntry) -> str:
        """The signature `g` must match: a derived node is matched against the supernet
        node it came from (a choice that became an op, a dense node that kept k inputs)."""
        if entry.kind == "choice" and g.kind == "op" and g.op in entry.options:
            return signature(graph, g, as_choice=True)
        if entry.kind == "dense" and entry.options and not set(g.candidates) <= set(entry.options):
            raise LatencyTableError(f"the latency table's node '{g.name}' reads "
                                    f"{', '.join(entry.options)}, not {', '.join(g.candidates)}; profile "
                                    "this space again: nasflow profile SPACE -o TABLE.json")
        return signature(graph, g)

    def check_machine(self, machine: dict[str, Any] | None = None) -> None:
        """LatencyTableError when the table was measured on another device model than this one."""
        here = machine or current_machine(self.machine.kind)
        if here is None:
            raise LatencyTableError(f"the latency table was measured on {self.machine.kind} "
                                    f"'{self.machine.name}', and this machine has no {self.machine.kind}; "
                                    "profile here: nasflow profile SPACE -o TABLE.json")
        if here["name"] != self.machine.name:
            raise LatencyTableError(f"the latency table was measured on {self.machine.kind} "
                                    f"'{self.machine.name}', this machine is '{here['name']}': its "
                                    "latencies do not hold here; profile here: nasflow profile SPACE -o TABLE.json")

    # --- prediction ------------------------------------------------------------------------
    def decision_costs(self, graph: Graph) -> DecisionCosts:
        """Milliseconds split by decision, for the regularizer and budgets (graph: the supernet)."""
        self.check_space(graph)

        def cost(g: GNode, option: str | None) -> float | ValueCost:
            entry = self.nodes[g.name]
            if not entry.value_deps and not isinstance(g.exists, Sym):
                return entry.timing.ms if option is None else entry.options[option].ms
            # Each value combination's timing, times whether a searched depth keeps the node.
            deps = sorted(set(entry.value_deps) | deps_of(g.exists))
            domains = tuple(graph.decisions[d].values for d in deps)
            table = []
            for combo in itertools.product(*domains):
                a = dict(zip(deps, combo))
                e = entry.at_values[values_key(entry.value_deps, a)] if entry.value_deps else entry
                ms = e.timing.ms if option is None else e.options[option].ms  # type: ignore[union-attr]
                table.append(ms * at(g.exists, a))
            return ValueCost(tuple(deps), domains, tuple(table))

        costs = split_by_decision(graph, "latency", cost)
        kept = [g for g in graph.nodes.values() if g.kind != "input"]
        costs.fixed += self.node_overhead_ms * sum(1 for g in kept if not isinstance(g.exists, Sym))
        costs.values += [c for g in kept if isinstance(g.exists, Sym)
                         if isinstance(c := ValueCost.of(g.exists, self.node_overhead_ms), ValueCost)]
        return costs

    def predict(self, graph: Graph) -> tuple[float, dict[str, float]]:
        """Predicted ms of a derived architecture (or the profiled graph itself, when it has
        no choices) and each node's share (its entry plus the per-node overhead)."""
        self.check_space(graph)
        per_node: dict[str, float] = {}
        for g in graph.nodes.values():
            if g.kind == "input":
                continue
            entry = self.nodes[g.name]
            if entry.value_deps:  # the entry at the derived node's values
                found = entry.at(self._wanted(graph, g, entry))
                assert found is not None, "check_space found it"
                entry = found  # type: ignore[assignment]
                kind = self.nodes[g.name].kind
            else:
                kind = entry.kind
            if entry.timing is not None and g.kind == kind:
                per_node[g.name] = entry.timing.ms
            elif kind == "choice":
                per_node[g.name] = entry.options[g.op].ms
            else:  # a dense node that kept some inputs
                per_node[g.name] = sum(entry.options[i].ms for i in g.candidates)
            per_node[g.name] += self.node_overhead_ms
        return sum(per_node.values()), per_node


def row_latencies(table: LatencyTable, graph: Graph) -> dict[tuple[str, str], float]:
    """{(node, op): ms, the per-node overhead included} for `nasflow cost`'s rows: every candidate of a supernet's choice
    nodes, each node of a derived architecture ("" for nodes without an op). A supernet's
    dense node shows the ms of all its candidate inputs merged (as its cost row counts them)."""
    table.check_space(graph)
    out: dict[tuple[str, str], float] = {}
    if graph.is_derived:
        _, per_node = table.predict(graph)
        for g in graph.nodes.values():
            if g.kind != "input":
                out[(g.name, g.op or "")] = per_node[g.name]
        return out
    for g in graph.nodes.values():
        if g.kind == "input":
            continue
        entry = table.nodes[g.name]
        if g.kind == "choice":
            for op, t in entry.options.items():
                out[(g.name, op)] = t.ms + table.node_overhead_ms
        elif entry.timing is not None:
            out[(g.name, g.op or "")] = entry.timing.ms + table.node_overhead_ms
        else:  # a dense node with a decision: each candidate input's share, k of them kept
            k = graph.decisions[entry.label].topk if entry.label in graph.decisions else 1
            out[(g.name, g.op or "")] = (k * sum(t.ms for t in entry.options.values()) / len(entry.options)
                                         + table.node_overhead_ms)
    return out


def run_nodes(graph: Graph) -> int:
    """The nodes a model of `graph` runs (inputs are not run): what the per-node overhead multiplies."""
    return sum(1 for g in graph.nodes.values() if g.kind != "input")


def signature(graph: Graph, g: GNode, as_choice: bool = False) -> str:
    """What a node computes, but for the image size and its options: kind, op, channels,
    args, activation, merge and size relative to the inputs. A dense node's candidate
    inputs are its options (checked apart), so a derived dense node that kept some of them
    has the supernet node's signature; `as_choice`: an op node derived from a choice."""
    kind = "choice" if as_choice else g.kind
    parts: dict[str, Any] = {"kind": kind, "c_out": g.c_out, "args": g.args, "act": g.act,
                             "size": str(graph.nodes[g.inputs[0]].size) if g.inputs else str(g.size)}
    if kind == "op":
        parts.update(op=g.op, c_in=g.c_in)
    elif kind == "choice":
        parts.update(c_in=g.c_in[:1])
    elif kind == "dense":
        parts.update(op=g.op, merge=g.merge)
    else:
        parts.update(merge=g.merge, c_in=g.c_in)
    return json.dumps(parts, sort_keys=True, default=str)


def load_table(path: str | os.PathLike[str]) -> LatencyTable:
    """Read a table; LatencyTableError naming the file and the problem when it is not one."""
    p = Path(path)
    if not p.is_file():
        raise LatencyTableError(f"latency table '{p}' does not exist; write one with "
                                f"nasflow profile SPACE -o {p}")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LatencyTableError(f"latency table '{p}' is not JSON ({exc}); write it again with "
                                "nasflow profile") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LatencyTableError(f"'{p}' is not a nasflow latency table (its format is "
                                f"{data.get('format') if isinstance(data, dict) else type(data).__name__!r}, "
                                f"expected '{FORMAT}'); write one with nasflow profile")
    try:
        return LatencyTable.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        at = ".".join(str(x) for x in err["loc"])
        raise LatencyTableError(f"latency table '{p}' is malformed at {at}: {err['msg']}; write it again "
                                "with nasflow profile") from None


def current_machine(kind: str = "cpu") -> dict[str, str] | None:
    """{kind, name} of this machine's device of that kind (None when it has none)."""
    if kind == "cuda":
        if not torch.cuda.is_available():
            return None
        return {"kind": "cuda", "name": torch.cuda.get_device_name()}
    return {"kind": "cpu", "name": cpu_name()}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _difference(table_sig: str, space_sig: str) -> str:
    a, b = json.loads(table_sig), json.loads(space_sig)
    diffs = [f"{k} {a.get(k)} in the table, {b.get(k)} in the space" for k in sorted(set(a) | set(b))
             if a.get(k) != b.get(k)]
    return "; ".join(diffs)


def _params(params: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "none"


def _sets(graph: Graph) -> str:
    return "".join(f" --set {k}={v}" for k, v in graph.space.params.items())
