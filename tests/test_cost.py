"""Cost of a whole space or model equals what counting its modules gives."""
from __future__ import annotations

import pytest
import torch
from counting import counted_madds
from toy_spaces import python_space

from nasflow.space.cost import graph_cost, input_size_for_output, parse_size
from nasflow.derive.genotype import Genotype, derive_space
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space, op
from nasflow.compile.supernet import compile_graph


def _counted(model, size):
    return sum(p.numel() for p in model.weights()), counted_madds(model, torch.rand(1, 3, *size))


def test_derived_model_cost_equals_counting():
    space = derive_space(python_space(), Genotype({"m1": "sep_conv_3x3"}, {"e3": ["c3", "c1"]}))
    graph = build_graph(space)
    report = graph_cost(graph, (20, 18))
    assert (report.params, report.madds) == _counted(compile_graph(graph), (20, 18))
    assert report.output_size == (40, 36)


def test_supernet_cost_counts_every_candidate():
    graph = build_graph(python_space())
    report = graph_cost(graph, (16, 16))
    params, _ = _counted(compile_graph(graph), (16, 16))
    assert report.params == params
    assert [r.op for r in report.rows if r.node == "c2.m1"] == list(graph.decisions["m1"].options)


def test_esa_cost_at_odd_sizes():
    space = Space(name="t", inputs={"x": 3}, nodes={
        "a": op("conv_3x3", "x", out=16), "b": op("esa", "a")}, output="b")
    graph = build_graph(space)
    for size in [(17, 17), (33, 50), (64, 41)]:
        report = graph_cost(graph, size)
        assert (report.params, report.madds) == _counted(compile_graph(graph), size)


def test_sizes():
    graph = build_graph(python_space())
    assert parse_size("1280x720") == (720, 1280)
    assert input_size_for_output(graph, (720, 1280)) == (360, 640)
    with pytest.raises(ValueError, match="not a multiple of the model's scale 2"):
        input_size_for_output(graph, (721, 1280))
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_size("1280*720")
