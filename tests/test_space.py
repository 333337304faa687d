"""The space schema: YAML and Python build the same objects; malformed files fail clearly."""
from __future__ import annotations

import pytest
from toy_spaces import python_space, yaml_space_file

from nasflow.errors import SpaceError
from nasflow.space.schema import Space


def test_python_space_round_trips_through_yaml(tmp_path):
    space = python_space()
    path = tmp_path / "toy.yaml"
    space.to_yaml(path)
    again = Space.from_yaml(path)
    assert again.to_data() == space.to_data()
    assert again.nodes["c1"].block == "cell"


def test_yaml_space_round_trips(tmp_path):
    space = Space.from_yaml(yaml_space_file(tmp_path))
    again = Space.from_yaml(yaml_space_file(tmp_path, space.to_yaml(), "again.yaml"))
    assert again.to_data() == space.to_data()


@pytest.mark.parametrize("text, match", [
    ("name: t\ninputs: {x: 3}\nnodes:\n  a: {op: conv_1x1, in: x, outt: 4}\noutput: a\n",
     r"space.yaml:4: nodes.a: unknown key 'outt'"),
    ("name: t\ninputs: {x: 3}\nnodes:\n  a: {op: conv_1x1, in: x}\n  a: {op: conv_3x3, in: x}\noutput: a\n",
     r"space.yaml:5: duplicate key 'a' \(first defined on line 4\)"),
    ("name: t\ninputs: {x: 3}\nnodes:\n  a: {in: x}\noutput: a\n",
     r"space.yaml:4: nodes.a: a node needs one of the keys op, choice, dense, combine, block or stack"),
    ("name: t\ninputs: {x: 3}\nnodes:\n  a: {op: conv_1x1, in: x\noutput: a\n", r"not valid YAML"),
    ("name: t\ninputs: {x: 3}\noutput: a\n", r"missing required key 'nodes'"),
    ("- just a list\n", r"must be a mapping"),
])
def test_malformed_files_name_the_line(tmp_path, text, match):
    with pytest.raises(SpaceError, match=match):
        Space.from_yaml(yaml_space_file(tmp_path, text))


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(SpaceError, match="does not exist"):
        Space.from_yaml(tmp_path / "nope.yaml")


def test_param_overrides():
    space = python_space().with_params({"C": 12})
    assert space.params["C"] == 12
    with pytest.raises(SpaceError, match=r"has no param 'channels' \(its params: C, scale\)"):
        python_space().with_params({"channels": 3})
