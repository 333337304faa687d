"""`nasflow profile --check`: can the table be trusted on this machine? Build N random derived
architectures of the space, time each end to end as inference runs it, and compare with
what the table predicts (Spearman rank correlation and mean relative error).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import derive_space, genotype_from_arch
from nasflow.errors import NasflowError
from nasflow.hardware.timing import Runner, threads as using_threads, time_call
from nasflow.search.latency_table import LatencyTable
from nasflow.space.graph import Graph, build_graph

Progress = Callable[[int, int, str], None]


@dataclass
class CheckRow:
    genotype: str
    predicted_ms: float
    measured_ms: float
    spread_ms: float

    @property
    def relative_error(self) -> float:
        return abs(self.predicted_ms - self.measured_ms) / self.measured_ms


@dataclass
class CheckResult:
    rows: list[CheckRow] = field(default_factory=list)

    @property
    def spearman(self) -> float:
        return spearman([r.predicted_ms for r in self.rows], [r.measured_ms for r in self.rows])

    @property
    def mean_relative_error(self) -> float:
        return sum(r.relative_error for r in self.rows) / len(self.rows)

    def to_json(self) -> dict:
        return {"spearman": self.spearman, "mean_relative_error": self.mean_relative_error,
                "rows": [{"genotype": r.genotype, "predicted_ms": r.predicted_ms,
                          "measured_ms": r.measured_ms, "spread_ms": r.spread_ms} for r in self.rows]}


def random_architectures(graph: Graph, n: int, seed: int = 0) -> list[Graph]:
    """`n` distinct derived architectures (fewer if the space has fewer), from random logits."""
    if not graph.decisions:
        raise NasflowError(f"'{graph.space.name}' has no choices: there is one architecture, nothing to "
                           "check a table against; profile the search space")
    g = torch.Generator().manual_seed(seed)
    out: dict[str, Graph] = {}
    for _ in range(20 * n):
        if len(out) == n:
            break
        logits = {label: torch.randn(len(d.options), generator=g) for label, d in graph.decisions.items()}
        geno = genotype_from_arch(graph, logits)
        if str(geno) not in out:
            out[str(geno)] = build_graph(derive_space(graph.space, geno))
    return list(out.values())


def check_table(graph: Graph, table: LatencyTable, runner: Runner | None = None, n: int = 8,
                seed: int = 0, threads: int | None = None, warmup: int = 2, reps: int = 5,
                progress: Progress | None = None) -> CheckResult:
    """Predicted vs measured latency of `n` random derived architectures at the table's size."""
    if n < 2:
        raise NasflowError(f"--check needs at least 2 architectures to rank, got {n}")
    runner = runner or Runner(table.machine.backend, "cpu" if table.machine.kind == "cpu" else "cuda",
                              table.machine.dtype)
    table.check_space(graph)
    result = CheckResult()
    archs = random_architectures(graph, n, seed)
    with using_threads(threads if threads is not None else table.machine.threads):
        for i, derived in enumerate(archs):
            geno = derived.space.meta.get("genotype", {})
            label = " ".join(f"{k}={v}" for k, v in geno.get("choices", {}).items())
            if progress is not None:
                progress(i, len(archs), label)
            predicted, _ = table.predict(derived)
            torch.manual_seed(seed + i)
            model = compile_graph(derived, fuse=False).eval()
            h, w = table.input_size
            inputs = [torch.rand(1, derived.nodes[name].c_out, int(h * derived.nodes[name].size),
                                 int(w * derived.nodes[name].size)) for name in derived.inputs]
            timing = time_call(runner.prepare(model, inputs), warmup, reps)
            result.rows.append(CheckRow(_short(derived), predicted, timing.ms, timing.spread))
    if progress is not None:
        progress(len(archs), len(archs), "done")
    return result


def _short(derived: Graph) -> str:
    geno = derived.space.meta.get("genotype", {})
    parts = [str(v) for v in geno.get("choices", {}).values()]
    parts += ["(" + ",".join(v) + ")" for v in geno.get("edges", {}).values()]
    return " ".join(parts)


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
