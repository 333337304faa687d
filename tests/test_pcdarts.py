"""PC-DARTS: partial channel connections as a registered mixed op; K = 1 is first-order
DARTS exactly (outputs and gradients, beta included); planted structure recovered with the
default K = 4; exact resume; a space it cannot split is one clear error."""
from __future__ import annotations

import pytest
import torch
from strategy_checks import assert_resume_is_exact, recovered, recoveries
from synthetic import PlantedTask, fast_config, planted_space

from nasflow.compile.mixed_ops import MIXED_OPS
from nasflow.compile.supernet import compile_graph
from nasflow.errors import NasflowError
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space, choice
from nasflow.strategies import Darts, PCDARTS
from strategies.partial_channels import channel_shuffle


def _model(strategy, channels=4):
    strategy.attach(model := compile_graph(build_graph(planted_space(channels)), mixed_op=strategy.mixed_op()))
    return model


def test_k1_equals_first_order_darts_outputs_and_gradients():
    darts = Darts(config=fast_config(strategy="darts", fuse=False))
    pc = PCDARTS(config=fast_config(strategy="pcdarts", strategy_options={"k": 1}))
    assert pc.mixed_op() == "partial-k1" and "partial-k1" in MIXED_OPS
    torch.manual_seed(3)
    a = _model(darts)
    torch.manual_seed(3)
    b = _model(pc)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)  # same init, same names
    inputs, target = PlantedTask().sample(4, torch.Generator().manual_seed(1))
    out_a, out_b = a(**inputs), b(**inputs)
    assert torch.equal(out_a, out_b)
    torch.nn.functional.mse_loss(out_a, target).backward()
    torch.nn.functional.mse_loss(out_b, target).backward()
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa.grad, pb.grad), name  # alpha, beta and every weight
    # And one whole search step of each, from the same state: the same arch and weights after.
    batches = [PlantedTask().sample(4, torch.Generator().manual_seed(s)) for s in (5, 6)]
    for strategy, model in ((darts, a), (pc, b)):
        model.zero_grad(set_to_none=True)
        strategy.loss_fn = PlantedTask(keep=1.0).loss
        strategy.step(model, *batches)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name


def test_a_quarter_of_the_channels_goes_through_the_candidates():
    pc = PCDARTS(config=fast_config(strategy="pcdarts"))
    assert pc.options.k == 4
    torch.manual_seed(0)
    model = _model(pc, channels=8)
    assert all(op.weight.shape[1] == 2 for op in [model.m.ops["conv_1x1"]])  # 8 / 4 channels in
    seen = []
    model.m.ops["conv_3x3"].register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[1]))
    inputs, _ = PlantedTask(channels=8).sample(2, torch.Generator().manual_seed(0))
    out = model(**inputs)
    assert seen == [2] and out.shape[1] == 8
    x = torch.arange(8.0).reshape(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_a_node_it_cannot_split_is_one_clear_error():
    space = Space(name="odd", inputs={"x": 6}, nodes={"m": choice(["conv_1x1", "conv_3x3"], "x")}, output="m")
    with pytest.raises(NasflowError, match=r"choice node 'm': partial channels \(K=4\).*6 -> 6.*k="):
        compile_graph(build_graph(space), mixed_op=PCDARTS(config=fast_config(strategy="pcdarts")).mixed_op())


def test_recovers_the_planted_op_and_edges_with_k4(tmp_path):
    found = recoveries(tmp_path, "pcdarts", channels=8)
    assert recovered(found) >= 4, found


def test_resume_is_exact(tmp_path):
    assert_resume_is_exact(tmp_path, "pcdarts", strategy_options={"k": 2})
