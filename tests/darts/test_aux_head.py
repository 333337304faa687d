"""DARTS' auxiliary head, and the engine's auxiliary outputs: a space's `auxiliary:` nodes
are built only for a training run that asks for them, computed only in training mode (the
model then returns (logits, aux) to the task's loss), and never exported, evaluated, saved
in model directories or counted; derive keeps them."""
from __future__ import annotations

import pytest
import torch
from counting import counted_madds

import nasflow.spaces.darts.ops  # noqa: F401  (registers the darts_* ops)
from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import Genotype, derive_space
from nasflow.errors import NasflowError, SpaceError
from nasflow.ops.registry import get_op
from nasflow.runs.config import AdamConfig
from nasflow.runs.modeldir import load_model
from nasflow.space.cost import graph_cost
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space, choice, op
from nasflow.spaces.darts.task import ClassificationTask
from nasflow.train.config import TrainConfig
from nasflow.train.loop import run_train


@pytest.mark.parametrize("c_in, classes, stride, size", [(576, 10, 3, 8), (24, 7, 2, 7)])
def test_declared_cost_equals_counted(c_in, classes, stride, size):
    spec = get_op("darts_aux_head")
    head = spec.factory(c_in, classes, stride=stride)
    # DARTS' AuxiliaryHeadCIFAR(576, 10): 73,728 + 256 + 393,216 + 1,536 + 7,690 parameters
    assert spec.params(c_in, classes, stride=stride) == sum(p.numel() for p in head.parameters())
    if (c_in, classes) == (576, 10):
        assert spec.params(576, 10) == 476_426
    x = torch.randn(1, c_in, size, size)  # costs are per sample; BatchNorm at 1x1 needs eval mode for one
    head.eval()
    assert counted_madds(head, x) == spec.madds(c_in, classes, size, size, stride=stride)
    assert head(x).shape == (1, classes)
    with pytest.raises(NasflowError, match="darts_aux_head takes the 8x8 maps"):
        spec.factory(c_in, classes)(torch.randn(2, c_in, 16, 16))


def tiny(with_aux: bool = True, searched: bool = False) -> Space:
    """32x32 -> stem -> two stride-2 reductions to 8x8 -> (a choice) -> classifier; the aux head
    reads the 8x8 maps."""
    nodes = {
        "stem": op("darts_conv_bn", "x", out="C"),
        "r1": op("darts_relu_conv_bn", "stem", out="C", stride=2),
        "r2": op("darts_relu_conv_bn", "r1", out="2 * C", stride=2),
        "m": choice(["darts_sep_conv_3x3", "darts_skip_connect"], "r2") if searched
        else op("darts_sep_conv_3x3", "r2"),
        "head": op("darts_classifier", "m", out="classes"),
    }
    if with_aux:
        nodes["aux"] = op("darts_aux_head", "r2", out="classes")
    return Space(name="tiny", task="classify", imports=["nasflow.spaces.darts.ops"], params={"C": 4, "classes": 10},
                 inputs={"x": 3}, nodes=nodes, output="head", auxiliary=["aux"] if with_aux else [])


def test_the_aux_output_is_training_only_and_never_counted():
    graph = build_graph(tiny())
    assert graph.auxiliary == ["aux"] and graph.aux_only == {"aux"}
    plain = compile_graph(graph)
    assert not hasattr(plain, "aux")  # not built unless asked for
    counted = graph_cost(graph, (32, 32)).params
    assert counted == sum(p.numel() for p in plain.parameters()) == graph_cost(build_graph(tiny(False)), (32, 32)).params
    torch.manual_seed(0)
    model = compile_graph(graph, auxiliary=True)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    logits, aux = model(x)
    assert logits.shape == aux.shape == (2, 10)
    model.eval()
    out = model(x)
    assert isinstance(out, torch.Tensor) and torch.equal(out, model(x))
    assert sum(p.numel() for p in model.eval_parameters()) == counted
    assert set(model.eval_state_dict()) == set(plain.state_dict())
    assert set(model.state_dict()) - set(model.eval_state_dict()) == {k for k in model.state_dict() if k.startswith("aux.")}


def test_an_aux_node_outside_auxiliary_is_still_unused():
    space = tiny()
    with pytest.raises(SpaceError, match="node 'aux' is never used on the way to the output"):
        build_graph(space.model_copy(update={"auxiliary": []}))


def test_derive_keeps_the_auxiliary_output():
    derived = derive_space(tiny(searched=True), Genotype({"m": "darts_skip_connect"}, {}))
    assert derived.auxiliary == ["aux"] and "aux" in derived.nodes
    assert build_graph(derived).aux_only == {"aux"}


def _config(**changes) -> TrainConfig:
    base = dict(steps=6, batch_size=8, optim=AdamConfig(lr=1e-3, weight_decay=0.0), lr_halve_every=1000,
                seed=0, device="cpu", validate_every=6, log_every=3, checkpoint_every=6, auxiliary=True)
    return TrainConfig(**{**base, **changes})


def test_training_with_the_aux_head_saves_the_evaluation_network(tmp_path):
    task = ClassificationTask(half=False, test_samples=16)
    seen = []
    loss = task.loss
    task.loss = lambda model, batch: (seen.append(model(batch[0])), loss(model, batch))[1]  # type: ignore[method-assign]
    result = run_train(_config(), tmp_path / "run", arch=tiny(), task=task)
    assert result.finished and all(isinstance(o, tuple) and len(o) == 2 for o in seen)
    assert result.params == graph_cost(build_graph(tiny()), (32, 32)).params
    model, space, _ = load_model(result.model_dir)
    assert space.auxiliary == ["aux"] and not hasattr(model, "aux")
    assert "top1" in result.valid
    # the aux loss moves the shared weights: training without it ends elsewhere
    off = run_train(_config(auxiliary=False), tmp_path / "off", arch=tiny(), task=ClassificationTask(
        half=False, test_samples=16))
    other = load_model(off.model_dir)[0].state_dict()
    assert not all(torch.equal(v, other[k]) for k, v in model.state_dict().items())


def test_auxiliary_on_an_architecture_without_one_is_refused(tmp_path):
    with pytest.raises(NasflowError, match="declares no auxiliary output; add `auxiliary: \\[NODE\\]`"):
        run_train(_config(), tmp_path / "run", arch=tiny(with_aux=False), task=ClassificationTask(test_samples=16))


def test_the_published_networks_carry_the_head_off_in_their_counts(tmp_path):
    from pathlib import Path

    from nasflow.space.load import load_space

    darts_v2 = load_space(Path(__file__).resolve().parents[2] / "spaces" / "darts" / "darts_v2.yaml")
    graph = build_graph(darts_v2)
    assert graph.auxiliary == ["aux"] and graph.nodes["aux"].inputs == ["cell13.dag.out"]  # 2 * 20 // 3
    model = compile_graph(graph, auxiliary=True)
    evaluated = sum(p.numel() for p in model.eval_parameters())
    assert evaluated == graph_cost(graph, (32, 32)).params == 3_349_342  # NetworkCIFAR, no auxiliary head
    assert sum(p.numel() for p in model.parameters()) - evaluated == 476_426  # AuxiliaryHeadCIFAR(576, 10)
    # the paper preset's retraining (auxiliary, drop-path) runs on the file, here 3 cells at C=2
    small = darts_v2.with_params({"layers": 3, "C": 2})
    result = run_train(_config(steps=2, validate_every=2, drop_path_prob=0.2), tmp_path / "run", arch=small,
                       task=ClassificationTask(half=False, cutout=16, test_samples=16))
    assert result.finished and result.params == graph_cost(build_graph(small), (32, 32)).params
