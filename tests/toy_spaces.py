"""Small spaces shared by the engine tests: one built in Python, one written in YAML."""
from __future__ import annotations

from pathlib import Path

from nasflow.space.schema import Block, Space, block, choice, combine, dense, op

CANDIDATES = ["conv_1x1", "conv_3x3", "sep_conv_3x3", "dil_conv_3x3"]


def python_space(per_instance_labels: bool = False) -> Space:
    """stem -> 3 cells (a shared choice + residual + distillation) -> dense edge -> x2 upsampler."""
    cell = Block(params={"C": None}, inputs=["x"], nodes={
        "m1": choice(CANDIDATES, "x", label=None if per_instance_labels else "m1"),
        "r1": combine("add", ["m1", "x"], act="lrelu"),
        "d1": op("conv_1x1", "x", out="C // 2", act="lrelu", bias=True),
        "cat": combine("concat", ["d1", "r1"]),
        "fuse": op("conv_1x1", "cat", out="C", bias=True),
    }, output="fuse")
    return Space(name="toy", params={"C": 8, "scale": 2}, inputs={"x": 3}, blocks={"cell": cell}, nodes={
        "stem": op("conv_3x3", "x", out="C", bias=True),
        "c1": block("cell", "stem", C="C"),
        "c2": block("cell", "c1", C="C"),
        "c3": block("cell", "c2", C="C"),
        "e3": dense(["c1", "c2", "c3"], topk=2, op="conv_1x1", out="C", act="lrelu", bias=True),
        "up_conv": op("conv_3x3", "e3", out="3 * scale * scale", bias=True),
        "up": op("pixel_shuffle", "up_conv", r="scale"),
    }, output="up")


YAML_SPACE = """\
name: toy-yaml
params: {C: 6}
inputs: {x: 3}
nodes:
  stem: {op: conv_3x3, in: x, out: C}
  a: {choice: [conv_1x1, conv_5x5, sep_conv_5x5], in: stem, act: relu}
  b: {choice: [conv_3x3, dil_conv_5x5], in: a}
  mix: {dense: [stem, a, b], topk: 1, merge: sum}
  head: {op: conv_1x1, in: mix, out: 3}
output: head
"""


def yaml_space_file(tmp_path: Path, text: str = YAML_SPACE, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
