"""The paper's three architectures as reference points for a Pareto plot on the DLSR space:
their Set5 x2 PSNR as the paper reports it (Table II), their params and Multi-Adds counted by
nasflow's cost model from spaces/dlsr/*.yaml at the plot's output size, as the searched
architectures are."""
from __future__ import annotations

from pathlib import Path

from nasflow.errors import NasflowError
from nasflow.search.latency_table import LatencyTable
from nasflow.space.cost import graph_cost, input_size_for_output
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space
from nasflow.space.schema import Space
from nasflow.viz.pareto import Point

HERE = Path(__file__).resolve().parent
SEARCH_SPACE = "dlsr-supernet"  # space.yaml's name
# (name, architecture file, Set5 x2 PSNR in the paper)
PAPER = (("DLSR", "dlsr.yaml", 38.04), ("DLSR-DIV", "dlsr-div.yaml", 38.05), ("DLSR-S", "dlsr-s.yaml", 37.71))


def reference_points(searched: Space, size: tuple[int, int] = (720, 1280),
                     table: LatencyTable | None = None) -> list[Point]:
    """The paper's points when `searched` is the DLSR space at x2 (the scale of its PSNRs); else
    none. With a latency table, each gets the latency it predicts where the table fits it (a
    table profiled at 48 channels does not fit DLSR-S's 18)."""
    if searched.name != SEARCH_SPACE or searched.params.get("scale") != 2:
        return []
    points = []
    for name, file, psnr in PAPER:
        graph = build_graph(load_space(HERE / file))
        cost = graph_cost(graph, input_size_for_output(graph, size))
        latency = None
        if table is not None:
            try:
                latency = table.predict(graph)[0]
            except NasflowError:  # another width or size than the table's: no latency point
                latency = None
        points.append(Point(name, cost.params, cost.madds, psnr, latency))
    return points
