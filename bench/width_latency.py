"""Latency per width: a latency table's prediction against whole networks (run by hand).

    nasflow profile dlsr/space-width --size 320x180 --threads 1 --clock cpu -o width.json
    python bench/width_latency.py width.json

DLSR-S's ops and cell inputs (spaces/dlsr/dlsr-s.yaml) at each width of
spaces/dlsr/space-width.yaml (ESA's inner width fixed), each derived, built and timed whole at
the table's input size, interleaved round by round (CPU time, one thread, median), beside what
the table predicts for the same genotype. Prints a markdown table of ratios to the narrowest.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import Genotype, derive_space
from nasflow.search.budget import Budget
from nasflow.search.latency_table import load_table
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space

ROOT = Path(__file__).resolve().parents[1]
EDGES = {"cell3_in": ["cell1", "cell2"], "cell4_in": ["cell2", "cell3"], "cell5_in": ["cell2", "cell4"],
         "cell6_in": ["cell4", "cell5"]}
OPS = {"mrb1": "conv_1x1", "mrb2": "sep_conv_7x7", "mrb3": "sep_conv_5x5"}  # DLSR's (and DLSR-S's)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", type=Path, help="a latency table of spaces/dlsr/space-width.yaml")
    parser.add_argument("--esa-f", type=int, default=4, help="ESA's inner width (DLSR-S: 4)")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = load_table(args.table)
    space = load_space(ROOT / "spaces" / "dlsr" / "space-width.yaml")
    graph = build_graph(space)
    predict = Budget.parse("latency=1ms").costs(graph, table)
    widths = list(space.values["channels"])
    genotypes = {c: Genotype(choices=dict(OPS), edges=dict(EDGES), values={"channels": c, "esa_f": args.esa_f})
                 for c in widths}
    nets = {c: compile_graph(build_graph(derive_space(space, genotypes[c]))).eval() for c in widths}
    h, w = table.input_size
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)) * 255
    times: dict[int, list[float]] = {c: [] for c in widths}
    with torch.no_grad():
        for c in widths:  # warm-up: oneDNN's primitives and the allocator
            nets[c](x)
            nets[c](x)
        for _ in range(args.rounds):
            for c in widths:
                t = time.process_time()
                nets[c](x)
                times[c].append(time.process_time() - t)
    base, pbase = statistics.median(times[widths[0]]), predict.of_genotype(graph, genotypes[widths[0]])
    print(f"| channels | params | table's prediction (ms) | x {widths[0]} | measured whole (ms) | x {widths[0]} |")
    print("|---|---|---|---|---|---|")
    for c in widths:
        params = sum(p.numel() for p in nets[c].parameters())
        measured, predicted = statistics.median(times[c]), predict.of_genotype(graph, genotypes[c])
        print(f"| {c} | {params:,} | {predicted:.1f} | {predicted / pbase:.2f} | {measured * 1e3:.1f} | "
              f"{measured / base:.2f} |")


if __name__ == "__main__":
    main()
