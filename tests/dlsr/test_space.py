"""The DLSR search space and the paper's three architectures: structure, costs, derivation.

Needs no shared data: the image crops come from the Set5 copy shipped with the package.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from nasflow.cli.main import app
from nasflow.spaces.dlsr.data import load_rgb
from nasflow.spaces.dlsr.evaluate import default_bench
from nasflow.spaces.dlsr.images import to_tensor
from typer.testing import CliRunner

from counting import counted_madds

from nasflow.space.cost import graph_cost
from nasflow.derive.genotype import Genotype, derive_space, inherit_weights
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space
from nasflow.compile.supernet import compile_graph

DLSR_DIR = Path(__file__).resolve().parents[2] / "spaces" / "dlsr"
MRB_OPS = ["conv_1x1", "conv_3x3", "conv_5x5", "conv_7x7", "sep_conv_3x3", "sep_conv_5x5",
           "sep_conv_7x7", "dil_conv_3x3", "dil_conv_5x5"]


def _genotype(ops: tuple[str, str, str], edges: tuple[tuple[str, str], ...]) -> Genotype:
    return Genotype({f"mrb{k + 1}": op for k, op in enumerate(ops)},
                    {f"cell{j + 3}_in": list(e) for j, e in enumerate(edges)})


_DLSR_EDGES = (("cell1", "cell2"), ("cell2", "cell3"), ("cell2", "cell4"), ("cell4", "cell5"))
# The table of ../shared/docs/dlsr-facts.md, written out here (not read from the shipped files):
# arch file -> (channels, genotype, params, paper Multi-Adds at x2 on a 1280x720 output).
PAPER = {
    "dlsr": (48, _genotype(("conv_1x1", "sep_conv_7x7", "sep_conv_5x5"), _DLSR_EDGES), 322_620, 68.1e9),
    "dlsr-div": (48, _genotype(("sep_conv_3x3", "sep_conv_5x5", "sep_conv_5x5"),
                               (("cell2", "cell1"), ("cell3", "cell2"), ("cell4", "cell3"), ("cell1", "cell3"))),
                 327_804, 69.3e9),
    "dlsr-s": (18, _genotype(("conv_1x1", "sep_conv_7x7", "sep_conv_5x5"), _DLSR_EDGES), 56_268, 12.4e9),
}
# Multi-Adds as nasflow counts them (conv weights and bias adds; see nasflow/cost.py), pinned.
MADDS = {"dlsr": 67_690_442_808, "dlsr-div": 68_884_836_408, "dlsr-s": 12_212_695_848}


def _structure(data: dict) -> dict:
    return {k: v for k, v in data.items() if k not in ("name", "description", "meta")}


@pytest.fixture(scope="module")
def lr_crop() -> torch.Tensor:
    """A real 24 x 24 LR patch (ESA needs at least 17 x 17), 0..255 floats."""
    img = load_rgb(default_bench() / "butterfly.png")
    return to_tensor(img[100:124, 100:124])[None]


# --- the search space ----------------------------------------------------------------------
def test_supernet_decisions():
    graph = build_graph(load_space(DLSR_DIR / "space.yaml"))
    alphas = {k: d for k, d in graph.decisions.items() if d.kind == "alpha"}
    betas = {k: d for k, d in graph.decisions.items() if d.kind == "beta"}
    assert sorted(alphas) == ["mrb1", "mrb2", "mrb3"]
    for k, d in alphas.items():
        assert list(d.options) == MRB_OPS
        assert d.nodes == tuple(f"cell{i}.m{k[-1]}" for i in range(1, 7))  # shared by all six cells
    assert {k: (d.options, d.topk) for k, d in betas.items()} == {
        f"cell{j}_in": (tuple(f"cell{i}" for i in range(1, j)), 2) for j in range(3, 7)}
    assert graph.space.task == "sr" and graph.space.params == {"channels": 48, "scale": 2}


def test_supernet_compiles_and_runs_on_a_real_crop(lr_crop):
    graph = build_graph(load_space(DLSR_DIR / "space.yaml"))
    model = compile_graph(graph)
    assert sum(p.numel() for p in model.arch_parameters()) == 3 * 9 + (2 + 3 + 4 + 5)
    assert sum(p.numel() for p in model.weights()) == graph_cost(graph, (8, 8)).params
    with torch.no_grad():
        y = model(lr_crop)
    assert y.shape == (1, 3, 48, 48) and torch.isfinite(y).all()


def test_state_dict_names_read_like_the_space():
    keys = compile_graph(build_graph(load_space(DLSR_DIR / "space.yaml"))).state_dict()
    for key in ("stem.op.weight", "cell1.d1.op.bias", "cell6.m3.ops.sep_conv_7x7.5.weight",
                "cell2.esa.op.conv3_.weight", "cell3_in.op.weight", "tail_fuse.op.weight",
                "tail_conv.op.bias", "up_conv.op.weight", "arch.alpha.mrb1", "arch.beta.cell6_in"):
        assert key in keys


# --- the paper's architectures ---------------------------------------------------------------
@pytest.mark.parametrize("name", list(PAPER))
def test_shipped_architecture_is_what_derivation_gives(name):
    channels, geno, _, _ = PAPER[name]
    space = load_space(DLSR_DIR / "space.yaml", {"channels": channels})
    derived = derive_space(space, geno, name=name)
    shipped = load_space(DLSR_DIR / f"{name}.yaml")
    assert _structure(shipped.to_data()) == _structure(derived.to_data())
    assert shipped.meta["genotype"] == geno.to_json()


@pytest.mark.parametrize("name", list(PAPER))
def test_architecture_compiles_without_decisions(name, lr_crop):
    graph = build_graph(load_space(DLSR_DIR / f"{name}.yaml"))
    assert graph.is_derived and not graph.decisions
    model = compile_graph(graph)
    assert not model.arch_parameters()
    assert sum(p.numel() for p in model.parameters()) == PAPER[name][2]
    with torch.no_grad():
        assert model(lr_crop).shape == (1, 3, 48, 48)


@pytest.mark.parametrize("name", list(PAPER))
def test_cost_cli_params_and_multi_adds(name):
    """`nasflow cost` at x2 on a 1280x720 output: params exact; Multi-Adds pinned, within 2%
    of the paper's Table II (conv weights alone would leave DLSR-S 2.7% below: its biases
    weigh more at 18 channels)."""
    result = CliRunner().invoke(app, ["cost", str(DLSR_DIR / f"{name}.yaml"), "--json", "--totals"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    _, _, params, paper_madds = PAPER[name]
    assert report["params"] == params
    assert report["input_size"] == [360, 640] and report["output_size"] == [720, 1280]
    assert report["madds"] == MADDS[name]
    assert abs(report["madds"] / paper_madds - 1) < 0.02


@pytest.mark.parametrize("name", list(PAPER))
def test_multi_adds_equal_counting(name):
    """The cost model against counting what the model runs (a smaller output keeps it fast:
    every term scales with the pixels except ESA's strided branch, which odd sizes exercise)."""
    graph = build_graph(load_space(DLSR_DIR / f"{name}.yaml"))
    size = (45, 62)
    assert graph_cost(graph, size).madds == counted_madds(compile_graph(graph), torch.rand(1, 3, *size))


# --- supernet with one-hot alpha and peaked beta == derived model ---------------------------
def test_one_hot_supernet_computes_the_derived_model(lr_crop):
    """DLSR-DIV's genotype (its cell3_in keeps both inputs, reordered): set alpha one-hot and
    beta peaked on the kept inputs; the derived model with inherited weights, each kept
    input's slice of the merge conv scaled by its softmax(beta), computes the same output."""
    torch.manual_seed(0)
    _, geno, _, _ = PAPER["dlsr-div"]
    space = load_space(DLSR_DIR / "space.yaml", {"channels": 16})
    graph = build_graph(space)
    supernet = compile_graph(graph).eval()
    with torch.no_grad():
        for label, op in geno.choices.items():
            row = supernet.arch.logits(label)
            row.fill_(-1e4)
            row[graph.decisions[label].options.index(op)] = 1e4
        for label, kept in geno.edges.items():
            row = supernet.arch.logits(label)
            row.fill_(-1e4)
            for rank, src in enumerate(kept):  # descending logits: the concatenation order
                row[graph.decisions[label].options.index(src)] = 10.0 - 5.0 * rank
    derived_graph = build_graph(derive_space(space, geno))
    derived = compile_graph(derived_graph).eval()
    state = inherit_weights(graph, supernet.state_dict(), derived_graph, derived.state_dict())
    beta = supernet.arch.softmax()
    for label, kept in geno.edges.items():
        w = state[f"{label}.op.weight"]
        for i, src in enumerate(kept):
            w[:, i * 16:(i + 1) * 16] *= beta[label][graph.decisions[label].options.index(src)].item()
    derived.load_state_dict(state)
    with torch.no_grad():
        a, b = supernet(lr_crop), derived(lr_crop)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-3), (a - b).abs().max()
