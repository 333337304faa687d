"""Weight inheritance on the DARTS cell space, which searches its BatchNorms without affine
parameters and retrains them with: the derived model inherits every tensor the supernet has
and gets the identity affine (weight 1, bias 0) for the rest, so with inherited weights it
computes what the supernet restricted to the derived picks computes (issue 24), whether a
choice keeps one op or several. A tensor the supernet truly lacks is one clear error."""
from __future__ import annotations

import pytest
import torch

import nasflow.spaces.darts.ops  # noqa: F401
from nasflow.compile.relaxation import Relaxation
from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import derive_space, inherit_weights
from nasflow.derive.record import Genotype
from nasflow.errors import NasflowError
from nasflow.space.graph import Graph, build_graph
from nasflow.spaces.darts.build import search_space

# Ops with BatchNorms (and skip_connect, a FactorizedReduce at stride 2); DARTS' pools are
# left out: its evaluation network drops the BatchNorm the search puts after them.
CONVS = ["darts_sep_conv_3x3", "darts_dil_conv_3x3", "darts_skip_connect", "darts_sep_conv_5x5",
         "darts_dil_conv_5x5"]


def _genotype(graph: Graph, several: bool) -> Genotype:
    geno = Genotype()
    for i, (label, d) in enumerate(graph.decisions.items()):
        if d.kind == "alpha":
            ops = [CONVS[i % 5], CONVS[(i + 1) % 5]] if several else CONVS[i % 5]
            geno.choices[label] = ops
        else:
            geno.edges[label] = list(d.options[-2:])
    return geno


class Picks(Relaxation):
    """The supernet restricted to a genotype: weight 1 on what it keeps, 0 elsewhere."""

    def __init__(self, graph: Graph, geno: Genotype) -> None:
        self.weights = {}
        for label, d in graph.decisions.items():
            kept = geno.ops(label) if d.kind == "alpha" else geno.edges[label]
            self.weights[label] = torch.tensor([float(o in kept) for o in d.options])

    def __call__(self, arch):  # type: ignore[no-untyped-def]
        return self.weights


@pytest.mark.parametrize("several", [False, True], ids=["one-op", "several-ops"])
def test_derived_model_with_inherited_weights_equals_the_restricted_supernet(several: bool) -> None:
    torch.manual_seed(0)
    space = search_space(C=2, layers=3)
    graph = build_graph(space)
    geno = _genotype(graph, several)
    supernet = compile_graph(graph)
    supernet.relaxation = Picks(graph, geno)
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        supernet(torch.rand(4, 3, 8, 8))  # running statistics away from their initial 0 and 1
    derived = build_graph(derive_space(space, geno))
    model = compile_graph(derived)
    state = inherit_weights(graph, supernet.state_dict(), derived, model.state_dict())
    affine = [k for k in state if k.endswith("bn.weight") or k.endswith(".2.weight")]
    assert affine and all(k not in supernet.state_dict() for k in affine)  # searched without affine
    model.load_state_dict(state)
    with torch.no_grad():
        for train in (False, True):  # running statistics, then batch statistics
            supernet.train(train)
            model.train(train)
            torch.testing.assert_close(model(x), supernet(x), rtol=1e-5, atol=1e-6)


def test_a_tensor_the_supernet_lacks_is_one_error() -> None:
    space = search_space(C=2, layers=3)
    graph = build_graph(space)
    geno = _genotype(graph, False)
    derived = build_graph(derive_space(space, geno))
    model = compile_graph(derived)
    weights = {k: v for k, v in compile_graph(graph).state_dict().items() if not k.endswith("running_mean")}
    with pytest.raises(NasflowError, match=r"the supernet has no tensor 'stem\.op\.1\.running_mean' "
                                          r"for the derived model: the weights are not from"):
        inherit_weights(graph, weights, derived, model.state_dict())
