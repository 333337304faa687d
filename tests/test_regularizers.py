"""Cost regularizers: the paper's L_P (eq. 9) and its Multi-Adds twin, differentiable in
alpha (not detached as in the paper's code), pushing alpha towards cheaper candidates."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from toy_spaces import python_space

from nasflow.space.cost import candidate_costs
from nasflow.space.graph import build_graph
from nasflow.registry import UnknownNameError
from nasflow.search.regularizers import REGULARIZERS, get_regularizer
from nasflow.space.schema import Space, choice, combine
from nasflow.compile.supernet import compile_graph


def _model_and_reg(name: str, space: Space | None = None):
    graph = build_graph(space or python_space())
    return graph, compile_graph(graph), get_regularizer(name)(graph)


@pytest.mark.parametrize("name", ["params", "madds"])
def test_value_is_eq9(name):
    graph, model, reg = _model_and_reg(name)
    with torch.no_grad():
        model.arch.logits("m1").copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
    costs = torch.tensor(candidate_costs(graph, "m1", name))  # conv_1x1, conv_3x3, sep_conv_3x3, dil_conv_3x3
    want = float((costs / costs.sum() * F.softmax(torch.tensor([0.5, -1.0, 2.0, 0.0]), -1)).sum())
    penalty, details = reg(model)
    assert float(penalty.detach()) == pytest.approx(want, rel=1e-6)
    assert details == {f"{name}/m1": pytest.approx(want, rel=1e-6)}  # one term per alpha label


@pytest.mark.parametrize("name", ["params", "madds"])
def test_gradient_is_nonzero_and_points_to_cheaper_ops(name):
    graph, model, reg = _model_and_reg(name)
    alpha = model.arch.logits("m1")
    penalty, _ = reg(model)
    penalty.backward()
    costs = candidate_costs(graph, "m1", name)
    assert alpha.grad.abs().min() > 0
    # d/d alpha_o = softmax_o * (c_o - mean cost): the dearer the op, the larger the gradient
    assert torch.argsort(alpha.grad).tolist() == sorted(range(len(costs)), key=costs.__getitem__)
    assert model.arch.logits("e3").grad is None  # beta is not a cost decision
    before = F.softmax(alpha.detach(), -1)
    with torch.no_grad():
        alpha -= 10 * alpha.grad
    after = F.softmax(alpha.detach(), -1)
    cheapest, dearest = costs.index(min(costs)), costs.index(max(costs))
    assert after[cheapest] > before[cheapest] and after[dearest] < before[dearest]
    assert float(reg(model)[0].detach()) < float(penalty.detach())


def test_params_and_madds_differ_where_the_costs_do():
    # ESA's strided branch costs Multi-Adds out of proportion to its parameters; a 1x1 conv
    # costs one multiply-add per weight and pixel. So the two penalties weigh them differently.
    space = Space(name="b", inputs={"x": 8}, nodes={"m": choice(["conv_1x1", "esa"], "x")}, output="m")
    graph = build_graph(space)
    _, model, params = _model_and_reg("params", space)
    madds = get_regularizer("madds")(graph)
    with torch.no_grad():
        model.arch.logits("m").copy_(torch.tensor([0.0, 1.0]))
    s = F.softmax(torch.tensor([0.0, 1.0]), -1)
    p, m = candidate_costs(graph, "m", "params"), candidate_costs(graph, "m", "madds")
    assert p[0] == 64 and p[1] > p[0]  # the conv: C*C weights; ESA: more, with biases
    assert p[1] / sum(p) != pytest.approx(m[1] / sum(m), rel=1e-3)
    assert float(params(model)[0].detach()) == pytest.approx(float(s[0] * p[0] + s[1] * p[1]) / sum(p))
    assert float(madds(model)[0].detach()) == pytest.approx(float(s[0] * m[0] + s[1] * m[1]) / sum(m))


def test_free_decisions_cost_nothing():
    space = Space(name="f", inputs={"x": 4}, nodes={
        "m": choice(["identity", "relu"], "x"), "s": combine("add", ["m", "x"])}, output="s")
    _, model, reg = _model_and_reg("params", space)
    penalty, details = reg(model)
    assert float(penalty.detach()) == 0 and details == {}


def test_registry():
    assert {"params", "madds"} <= set(REGULARIZERS.names())
    with pytest.raises(UnknownNameError, match="unknown regularizer 'param'; did you mean 'params'"):
        get_regularizer("param")
