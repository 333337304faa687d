"""`nasflow profile --check`: can the table be trusted on this machine? Build N random derived
architectures of the space, time each end to end as inference runs it, and compare with
what the table predicts (Spearman rank correlation and mean relative error).

The whole networks and the table's nodes are timed interleaved (round after round, each
once, shuffled: nasflow/hardware/timing.py), so on a shared machine the load of the moment
slows both sides alike. The headline figures compare the end-to-end medians with the
table's model (sum of nodes + per-node overhead) on the nodes' medians of the same rounds;
the table as written is compared too, and `drift` says how much slower the nodes ran now
than when the table was written (1.0 on a machine in the same state).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nasflow.errors import NasflowError
from nasflow.hardware.archs import CHECK_SEED, end_to_end, random_architectures, short_name
from nasflow.hardware.profile import Probe, assemble, probes
from nasflow.hardware.timing import CLOCKS, Runner, threads as using_threads, time_interleaved
from nasflow.search.latency_table import LatencyTable, run_nodes
from nasflow.space.graph import Graph

if TYPE_CHECKING:
    from nasflow.runs.population_ray import RayOptions

Progress = Callable[[int, int, str], None]

__all__ = ["CheckResult", "CheckRow", "check_table", "random_architectures", "spearman"]


@dataclass
class CheckRow:
    genotype: str
    predicted_ms: float  # the table's model on the nodes timed in the same rounds
    measured_ms: float  # the whole network, median of the rounds
    spread_ms: float  # its interquartile range
    table_ms: float  # the table as written

    @property
    def relative_error(self) -> float:
        return abs(self.predicted_ms - self.measured_ms) / self.measured_ms


@dataclass
class CheckResult:
    rows: list[CheckRow] = field(default_factory=list)
    drift: float = 1.0  # the nodes' time now over the table's

    @property
    def spearman(self) -> float:  # nan for one architecture
        if len(self.rows) < 2:
            return float("nan")
        return spearman([r.predicted_ms for r in self.rows], [r.measured_ms for r in self.rows])

    @property
    def mean_relative_error(self) -> float:
        return sum(r.relative_error for r in self.rows) / len(self.rows)

    @property
    def table_spearman(self) -> float:
        if len(self.rows) < 2:
            return float("nan")
        return spearman([r.table_ms for r in self.rows], [r.measured_ms for r in self.rows])

    @property
    def table_mean_relative_error(self) -> float:
        return sum(abs(r.table_ms - r.measured_ms) / r.measured_ms for r in self.rows) / len(self.rows)

    def to_json(self) -> dict:
        return {"spearman": _finite(self.spearman), "mean_relative_error": self.mean_relative_error,
                "table": {"spearman": _finite(self.table_spearman), "mean_relative_error": self.table_mean_relative_error,
                          "drift": _finite(self.drift)},
                "rows": [{"genotype": r.genotype, "predicted_ms": r.predicted_ms, "measured_ms": r.measured_ms,
                          "spread_ms": r.spread_ms, "table_ms": r.table_ms} for r in self.rows]}


def check_table(graph: Graph, table: LatencyTable, runner: Runner | None = None, n: int = 8,
                seed: int = CHECK_SEED, threads: int | None = None, warmup: int = 2, reps: int = 5,
                progress: Progress | None = None, executor: str = "local",
                ray: RayOptions | None = None) -> CheckResult:
    """Predicted vs measured latency of `n` random derived architectures at the table's size,
    in `reps` rounds that time each architecture and each of the table's nodes once. `graph`
    a derived architecture (no choices): that one architecture against the table (n unused).

    executor="ray": the architectures split over the nodes of a Ray cluster (`ray`: where),
    one task per node (a placement group spreads them strictly, so no two tasks time on one
    node), each timing its share and the table's nodes interleaved on its node, which must be
    the table's device model. The same architectures and rows, in the same order."""
    from nasflow.runs.population_ray import check_executor

    check_executor(executor)
    if ray is not None and executor != "ray":
        raise NasflowError("--ray-address and --cpus-per-run need --executor ray")
    derived_only = not graph.decisions
    if n < 2 and not derived_only:
        raise NasflowError(f"--check needs at least 2 architectures to rank, got {n}")
    runner = runner or Runner(table.machine.backend, "cpu" if table.machine.kind == "cpu" else "cuda",
                              table.machine.dtype, table.machine.clock)
    table.check_space(graph)
    archs = [graph] if derived_only else random_architectures(graph, n, seed)
    timing = _Timing(runner, seed, threads, warmup, reps)
    if executor == "ray":
        rows = _rows_on_ray(graph, table, archs, timing, ray)
    else:
        rows = timing.rows(graph, table, archs, list(range(len(archs))), progress)
    result = CheckResult(rows)
    # the architectures' nodes now against the table's (the per-node overhead left out)
    overhead = table.node_overhead_ms * sum(run_nodes(d) for d in archs)
    then = sum(r.table_ms for r in result.rows) - overhead
    result.drift = (sum(r.predicted_ms for r in result.rows) - overhead) / then if then > 0 else float("nan")
    return result


@dataclass
class _Timing:
    """How a check times (the same on this machine and in each Ray task)."""

    runner: Runner
    seed: int
    threads: int | None
    warmup: int
    reps: int

    def rows(self, graph: Graph, table: LatencyTable, archs: list[Graph], index: list[int],
             progress: Progress | None = None) -> list[CheckRow]:
        """archs (numbered `index` in the whole check: their weights' seeds) timed whole, and
        the table's nodes, interleaved in the same rounds; a row each."""
        todo = probes(graph, table.input_size)
        unique: dict[str, Probe] = {}
        for p in todo:
            unique.setdefault(p.key, p)
        with using_threads(self.threads if self.threads is not None else table.machine.threads):
            calls = {}
            for i, derived in zip(index, archs):
                if progress is not None:
                    progress(i, len(archs), f"preparing {short_name(derived)}")
                calls[f"arch {i}"] = end_to_end(derived, table.input_size, self.runner, seed=self.seed + i)
            for key, probe in unique.items():
                module, inputs = probe.build()
                calls[key] = self.runner.prepare(module, inputs)
            timed = time_interleaved(calls, self.warmup, self.reps, seed=self.seed, clock=CLOCKS[self.runner.clock],
                                     progress=None if progress is None else (
                lambda r, total: progress(r, total, f"round {r + 1} of {total}" if r < total else "done")))
        now = table.model_copy(update={"nodes": assemble(graph, todo, timed)})
        return [CheckRow(short_name(derived), now.predict(derived)[0], timed[f"arch {i}"].ms,
                         timed[f"arch {i}"].spread, table.predict(derived)[0]) for i, derived in zip(index, archs)]


def _check_on_node(timing: _Timing, graph: Graph, table: LatencyTable, archs: list[Graph],
                   index: list[int]) -> list[CheckRow]:
    """A Ray task: this node must be the table's device model; its share of the check."""
    table.check_machine()
    return timing.rows(graph, table, archs, index)


def _rows_on_ray(graph: Graph, table: LatencyTable, archs: list[Graph], timing: _Timing,
                 options: RayOptions | None) -> list[CheckRow]:
    from nasflow.runs.population_ray import RayOptions
    from nasflow.runs.ray_tasks import connect, require_ray

    options = options or RayOptions()
    ray = require_ray()
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    joined = connect(options.address)
    try:
        cpus = options.cpus_per_run or float(timing.threads or table.machine.threads)
        gpus = options.gpus_per_run if options.gpus_per_run is not None else float(table.machine.kind != "cpu")
        nodes = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) >= cpus
                 and n["Resources"].get("GPU", 0) >= gpus]
        if not nodes:
            raise NasflowError(f"no node of the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs free for a check "
                               "task; lower --cpus-per-run or add nodes")
        k = min(len(archs), len(nodes))
        shares = [list(range(len(archs)))[j::k] for j in range(k)]
        bundle = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
        group = placement_group([bundle] * k, strategy="STRICT_SPREAD")  # one task per node: timings undisturbed
        if not ray.get(group.ready(), timeout=120):
            raise NasflowError("the Ray cluster could not place the check's tasks one per node")
        task = ray.remote(max_retries=0)(_check_on_node)
        refs = [task.options(num_cpus=cpus, num_gpus=gpus, scheduling_strategy=PlacementGroupSchedulingStrategy(
            group, placement_group_bundle_index=j)).remote(timing, graph, table, [archs[i] for i in share], share)
            for j, share in enumerate(shares)]
        try:
            parts = ray.get(refs)
        except ray.exceptions.RayTaskError as exc:  # a node of another device model: its one line
            cause = exc.cause if isinstance(getattr(exc, "cause", None), NasflowError) else None
            if cause is not None:
                raise cause from None
            raise
        finally:
            remove_placement_group(group)
    finally:
        if joined:
            ray.shutdown()
    rows: dict[int, CheckRow] = {}
    for share, part in zip(shares, parts):
        rows.update(zip(share, part))
    return [rows[i] for i in range(len(archs))]


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x  # JSON has no NaN


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):  # ties share their mean rank
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (Pearson's on ranks, ties averaged); nan when a side is constant."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("spearman needs two lists of the same length, at least 2")
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else float("nan")
