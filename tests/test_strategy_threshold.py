"""docs/writing-a-strategy.md's second example, run as the doc prints it: a threshold strategy
(Fair DARTS-like: a sigmoid per candidate op, every op above a threshold kept). Several ops
per decision: the genotype lists them, the derived space sums them (a node per op and an add),
and the derived model searches, derives, trains and exports through the CLI with exact costs;
each kept op inherits its candidate's weights, so the supernet with those ops at weight 1
computes what the derived model computes (issue 24 item 8)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasflow.cli.main import app
from nasflow.compile.relaxation import Relaxation
from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import derive_space, genotype_from_arch, inherit_weights
from nasflow.derive.record import Genotype
from nasflow.errors import HookError
from nasflow.space.graph import build_graph
from nasflow.space.load import load_graph
from nasflow.space.schema import Space, choice, combine, op
from nasflow.strategies import Strategy, get_strategy

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-strategy.md"
MODULE = "my_threshold"
NAME = f"{MODULE}:Threshold"
pytestmark = pytest.mark.filterwarnings("ignore::nasflow.errors.NasflowWarning")

SPACE_YAML = """\
name: threshold-toy
task: sr
params: {C: 4, scale: 2}
inputs: {x: 3}
nodes:
  stem: {op: conv_3x3, in: x, out: C}
  m: {choice: [conv_1x1, conv_3x3, sep_conv_3x3, identity], in: stem, act: relu}
  r: {combine: add, in: [m, stem]}
  up_conv: {op: conv_3x3, in: r, out: 3 * scale * scale}
  up: {op: pixel_shuffle, in: up_conv, args: {r: scale}}
output: up
"""


def doc_module() -> str:
    (block,) = re.findall(r'```python title="my_threshold.py"\n(.*?)```', DOC.read_text(), flags=re.S)
    return block


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / f"{MODULE}.py").write_text(doc_module())
    (tmp_path / "space.yaml").write_text(SPACE_YAML)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.setenv("NASFLOW_TRUST_IMPORTS", "1")
    yield tmp_path
    sys.modules.pop(MODULE, None)


def _space() -> Space:
    return Space(name="s", params={"C": 4}, inputs={"x": 4}, nodes={
        "m": choice(["conv_1x1", "conv_3x3", "sep_conv_3x3", "identity"], "x", act="relu"),
        "out": combine("add", ["m", "x"]),
        "head": op("conv_1x1", "out", out="C"),
    }, output="head")


def test_the_rule_keeps_every_op_above_the_threshold(folder: Path) -> None:
    cls: type[Strategy] = get_strategy(NAME)
    rule = cls(config=None).derivation_rule()
    graph = build_graph(_space())
    logits = {"m": torch.tensor([2.0, -1.0, 0.5, -3.0])}  # sigmoid: 0.88, 0.27, 0.62, 0.05
    geno = genotype_from_arch(graph, logits, rule=rule)
    assert geno.choices == {"m": ["conv_1x1", "sep_conv_3x3"]}  # best first
    assert Genotype.from_json(json.loads(json.dumps(geno.to_json()))) == geno
    # None above it: the best alone, as a plain string (the genotype of one op per choice).
    assert genotype_from_arch(graph, {"m": torch.tensor([-2.0, -1.0, -3.0, -4.0])}, rule=rule).choices == {
        "m": "conv_3x3"}
    # The relaxation's weights are what tables show: sigmoid, named so.
    relaxation = cls(config=None).relaxation()
    assert relaxation.weights_name == "sigmoid"


def test_a_rule_that_keeps_a_wrong_list_is_one_error(folder: Path) -> None:
    rule = get_strategy(NAME)(config=None).derivation_rule()
    rule.keep = lambda decision, logits: ["conv_1x1", "conv_1x1"]  # type: ignore[method-assign]
    with pytest.raises(HookError, match=r"derivation rule AboveThreshold keep returned .*expected a non-empty list "
                                        r"of distinct option\(s\) of 'm'"):
        genotype_from_arch(build_graph(_space()), {"m": torch.zeros(4)}, rule=rule)


def test_kept_ops_inherit_their_candidates_weights() -> None:
    space = _space()
    graph = build_graph(space)
    torch.manual_seed(0)
    supernet = compile_graph(graph, mixed_op="plain")
    geno = Genotype(choices={"m": ["sep_conv_3x3", "identity", "conv_1x1"]})
    derived = build_graph(derive_space(space, geno))
    assert derived.nodes["m"].kind == "combine" and sorted(derived.nodes["m"].inputs) == [
        "m__conv_1x1", "m__identity", "m__sep_conv_3x3"]
    model = compile_graph(derived)
    model.load_state_dict(inherit_weights(graph, supernet.state_dict(), derived, model.state_dict()))

    class KeptAtOne(Relaxation):
        def __call__(self, arch):  # type: ignore[no-untyped-def]
            return {"m": torch.tensor([1.0, 0.0, 1.0, 1.0])}

    supernet.relaxation = KeptAtOne()
    x = torch.rand(2, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(supernet(x), model(x), atol=1e-6)


def test_search_derive_train_export_with_exact_costs(folder: Path) -> None:
    runner = CliRunner()
    tiny = ["--batch", "2", "--device", "cpu", "--task-opt", "patch=48", "-q"]

    def nasflow(*args: str) -> str:
        done = runner.invoke(app, list(args))
        assert done.exit_code == 0, f"nasflow {' '.join(args)}:\n{done.output}\n{done.exception!r}"
        return done.output

    nasflow("search", "space.yaml", "--strategy", NAME, "--strategy-opt", "threshold=0.3", "--steps", "3",
            "--warmup", "1", "--levers", "given", "--snapshot-steps", "none", "--out", "s", *tiny)
    nasflow("derive", "s")
    kept = json.loads((folder / "s" / "derived" / "genotype.json").read_text())["choices"]["m"]
    assert isinstance(kept, list) and len(kept) >= 2  # sigmoid(~0) = 0.5 > 0.3: several kept
    arch = load_graph("s/derived/arch.yaml")
    assert arch.is_derived and arch.nodes["m"].kind == "combine"
    assert {arch.nodes[f"m__{o}"].op for o in kept} == set(kept)

    cost = json.loads(nasflow("cost", "s/derived/arch.yaml", "--json"))
    assert cost["params"] == sum(p.numel() for p in compile_graph(arch).parameters())

    nasflow("train", "s/derived", "--steps", "2", "--validate-every", "2", "--out", "t", *tiny)
    assert (folder / "t" / "model" / "weights.safetensors").is_file()
    pytest.importorskip("onnxruntime")
    nasflow("export", "t/model", "--onnx", "m.onnx")
    assert (folder / "m.onnx").stat().st_size > 0
