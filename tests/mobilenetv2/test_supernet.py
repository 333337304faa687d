"""The MobileNetV2 supernet (one weight at the largest values, sliced or channel-masked per
value) computes what the derived architecture computes with the weights it inherits, at
MobileNetV2's own values and at a mixed pick of kernels, expansions, widths and depths;
and the skips sit where the shape allows them."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from nasflow import Space, build_graph, compile_graph
from nasflow.compile.relaxation import Relaxation
from nasflow.derive.genotype import Genotype, derive_space, inherit_weights
from nasflow.spaces.mobilenetv2.points import values

SPACE = Path(__file__).resolve().parents[2] / "spaces" / "mobilenetv2" / "space.yaml"
MIXED = {**values(1.0), "W0": 24, "K2": 5, "D2": 4, "K3": 7, "E4": 3, "W4": 48, "D5": 2, "W6": 80, "K7": 5}


class Pick(Relaxation):
    """One-hot decision weights at `picks`: `sparse` runs only the picked values (the exact,
    sliced path of a sampled step); not sparse, every node at the largest width, masked."""

    def __init__(self, picks: dict[str, int], sparse: bool) -> None:
        self.picks, self.sparse = picks, sparse  # type: ignore[misc]

    def __call__(self, arch):  # noqa: ANN001
        out = {}
        for label, d in arch.decisions.items():
            w = torch.zeros(len(d.options))
            w[d.values.index(self.picks[label])] = 1.0
            out[label] = w
        return out


def _no_dropout(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    space = Space.from_yaml(SPACE)
    graph = build_graph(space)
    net = _no_dropout(compile_graph(graph))
    for m in net.modules():  # BatchNorm whose every number matters
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 1.5)
    return space, graph, net


def _derived(space, graph, net, picks):
    dgraph = build_graph(derive_space(space, Genotype(choices={}, values=picks)))
    model = _no_dropout(compile_graph(dgraph))
    model.load_state_dict(inherit_weights(graph, net.state_dict(), dgraph, model.state_dict(), picks))
    return model


@pytest.mark.parametrize("picks", [values(0.5), MIXED], ids=["torchvision-0.5", "mixed"])
@pytest.mark.parametrize("sparse", [True, False], ids=["sliced", "masked"])
def test_supernet_at_a_pick_is_the_derived_model_training(supernet, picks, sparse):
    space, graph, net = supernet
    model = _derived(space, graph, net, picks).train()
    net.train()
    net.relaxation = Pick(picks, sparse)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert float((net(x) - model(x)).abs().max()) <= 1e-5


@pytest.mark.parametrize("sparse", [True, False], ids=["sliced", "masked"])
def test_supernet_at_a_pick_is_the_derived_model_in_eval(supernet, sparse):
    """BatchNorm's running statistics, sliced or masked, as the derived model reads its own."""
    space, graph, net = supernet
    model = _derived(space, graph, net, MIXED).eval()
    net.eval()
    net.relaxation = Pick(MIXED, sparse=sparse)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert float((net(x) - model(x)).abs().max()) <= 1e-5


def test_skips_where_the_shape_allows():
    """Every block after a stage's first adds its input (stride 1, Ws in and out); the first
    blocks, the t = 1 block and stage 7's one block do not."""
    graph = build_graph(Space.from_yaml(SPACE), values=values(1.0))
    adds = {n.rsplit(".", 1)[0] for n, g in graph.nodes.items() if g.kind == "combine"}
    repeats = {n.split(".")[0] for n in graph.nodes if "r" in n.split(".")[0][2:]}
    assert adds == repeats and len(adds) == 1 + 2 + 3 + 2 + 2  # torchvision's 10 residual blocks
    for block in adds:
        add = graph.nodes[f"{block}.add"]
        x = graph.nodes[add.inputs[1]]
        assert add.c_in[0] == x.c_out and add.size == x.size
