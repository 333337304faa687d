"""`nasflow draw`: the picture holds every node once (its text naming the node and its op or
candidates), one arrow per edge, a channel count on the edges that equals the source's
inferred channels, a cluster per cell, and the decisions (and only they) in red frames."""
from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.colors import to_hex
from PIL import Image
from toy_spaces import python_space, yaml_space_file

from nasflow.errors import NasflowError
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space
from nasflow.viz import draw as draw_module
from nasflow.viz.draw import DECISION_EDGE, draw, draw_figure, load_graph, node_text

DLSR = Path(__file__).resolve().parents[1] / "spaces" / "dlsr"


def boxes(fig) -> list[tuple[str, object]]:
    """(text, Text artist) of the node boxes (texts with a frame, not the small edge labels)."""
    ax = fig.axes[0]
    return [(t.get_text(), t) for t in ax.texts if t.get_bbox_patch() is not None and t.get_fontsize() > 6]


@pytest.mark.parametrize("source", ["space.yaml", "dlsr.yaml", "toy", "yaml"])
def test_every_node_edge_and_decision_is_drawn(tmp_path, source):
    if source == "toy":
        path = tmp_path / "toy.yaml"
        python_space().to_yaml(path)
    elif source == "yaml":
        path = yaml_space_file(tmp_path)
    else:
        path = DLSR / source
    graph = build_graph(load_space(path))
    fig, placed = draw_figure(graph, engine="nasflow")
    ax = fig.axes[0]
    assert set(placed.pos) == set(graph.nodes)
    assert len(set(placed.pos.values())) == len(graph.nodes)  # no two nodes on one spot
    drawn = boxes(fig)
    assert sorted(text for text, _ in drawn) == sorted(node_text(g) for g in graph.nodes.values())
    edges = {(s, n) for n, g in graph.nodes.items() for s in g.inputs}
    arrows = [c for c in ax.get_children() if type(c).__name__ == "Annotation"]
    assert len(arrows) == len(edges)
    # Decisions in red frames, nothing else.
    red = sorted(text for text, t in drawn if to_hex(t.get_bbox_patch().get_edgecolor()) == DECISION_EDGE)
    want = sorted(node_text(g) for g in graph.nodes.values() if g.kind in ("choice", "dense") and g.label)
    assert red == want and (bool(want) == bool(graph.decisions))
    for g in graph.nodes.values():
        if g.kind == "choice":
            assert all(op in node_text(g) for op in g.candidates)
    # Channel labels: every one is some source's inferred channel count.
    labels = [t.get_text() for t in ax.texts if t.get_fontsize() <= 6]
    assert labels and set(labels) <= {str(graph.nodes[s].c_out) for s, _ in edges}
    # Cells are clusters: one per block instance.
    blocks = {n.split(".")[0] for n in graph.nodes if "." in n}
    assert set(placed.clusters) == blocks


def test_dlsr_cells_are_six_clusters_and_the_file_is_a_png(tmp_path):
    path, placed, graph = draw(DLSR / "space.yaml", tmp_path / "dlsr.png", engine="nasflow")
    assert sorted(placed.clusters) == [f"cell{i}" for i in range(1, 7)]
    assert all(len(v) == 13 for v in placed.clusters.values())
    with Image.open(path) as img:
        w, h = img.size
    assert 1000 < w < 5000 and 400 < h < 3000
    svg, _, _ = draw(yaml_space_file(tmp_path), tmp_path / "s.svg", engine="nasflow")  # small: fast
    assert "</svg>" in svg.read_text()


def test_a_model_directory_draws_its_architecture(tmp_path):
    from nasflow.compile.supernet import compile_graph
    from nasflow.runs.modeldir import save_model

    space = load_space(DLSR / "dlsr-s.yaml")
    save_model(tmp_path / "model", space, compile_graph(build_graph(space)).state_dict(), {})
    assert load_graph(tmp_path / "model").space.name == space.name


def test_bad_output_and_missing_graphviz_fail_clearly(tmp_path, monkeypatch):
    with pytest.raises(NasflowError, match="give a .png or .svg file name"):
        draw(DLSR / "dlsr.yaml", tmp_path / "x.jpg")
    monkeypatch.setattr(draw_module, "_graphviz_layout", lambda graph: None)
    with pytest.raises(NasflowError, match="--layout graphviz needs graphviz"):
        draw(DLSR / "dlsr.yaml", tmp_path / "x.png", engine="graphviz")
    path, placed, _ = draw(yaml_space_file(tmp_path), tmp_path / "x.png")  # auto falls back
    assert placed.engine == "nasflow" and path.is_file()


def test_cli_draw(tmp_path, capsys):
    from nasflow.cli.main import run

    with pytest.raises(SystemExit) as exc:
        run(["draw", str(yaml_space_file(tmp_path)), "-o", str(tmp_path / "s.png"), "--layout", "nasflow"])
    assert exc.value.code == 0
    assert "toy-yaml (supernet, 3 decisions" in capsys.readouterr().out and (tmp_path / "s.png").is_file()


def test_graphviz_layout_when_installed(tmp_path):
    import shutil

    if shutil.which("dot") is None:
        pytest.skip("graphviz's dot is not installed (apt install graphviz); nasflow's own layout is used")
    pytest.importorskip("pydot", reason="neither pygraphviz nor pydot is installed (pip install pydot)")
    graph = build_graph(load_space(yaml_space_file(tmp_path)))
    fig, placed = draw_figure(graph, engine="auto")  # no blocks: dot when installed
    assert placed.engine == "graphviz" and set(placed.pos) == set(graph.nodes)
    assert len(set(placed.pos.values())) == len(graph.nodes)
    for name, g in graph.nodes.items():  # dot's ranks: data flows down
        assert all(placed.pos[src][1] < placed.pos[name][1] for src in g.inputs)
    assert draw_figure(build_graph(load_space(DLSR / "dlsr.yaml")))[1].engine == "nasflow"  # cells: ours
