"""PC-DARTS: partial channel connections as a registered mixed op; K = 1 is first-order
DARTS exactly (outputs and gradients, beta included); planted structure recovered with the
default K = 4; exact resume; a space it cannot split is one clear error. With the search's
fused kernels (fuse on) the partial op sums its share with them: K = 1 is then the fused
DARTS supernet exactly, and any K equals the plain partial op to float rounding."""
from __future__ import annotations

import pytest
import torch
from strategy_checks import assert_resume_is_exact, recovered, recoveries
from synthetic import PlantedTask, fast_config, planted_space

from nasflow.compile.mixed_ops import MIXED_OPS
from nasflow.compile.supernet import compile_graph
from nasflow.errors import NasflowError
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space, choice, op
from nasflow.strategies import Darts, PCDARTS
from strategies.partial_channels import channel_shuffle


def _model(strategy, channels=4):
    strategy.attach(model := compile_graph(build_graph(planted_space(channels)), mixed_op=strategy.mixed_op()))
    return model


def test_k1_equals_first_order_darts_outputs_and_gradients():
    darts = Darts(config=fast_config(strategy="darts", fuse=False))
    pc = PCDARTS(config=fast_config(strategy="pcdarts", fuse=False, strategy_options={"k": 1}))
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


def test_k1_with_the_fused_kernels_equals_fused_darts_exactly():
    darts = Darts(config=fast_config(strategy="darts", fuse=True))
    pc = PCDARTS(config=fast_config(strategy="pcdarts", fuse=True, strategy_options={"k": 1}))
    assert pc.mixed_op() == "partial-k1-fused" and darts.mixed_op() == "fused"
    space = _levers_space(channels=6)
    torch.manual_seed(3)
    a = compile_graph(build_graph(space), mixed_op=darts.mixed_op())
    torch.manual_seed(3)
    b = compile_graph(build_graph(space), mixed_op=pc.mixed_op())
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    x = torch.rand(2, 3, 11, 13)
    out_a, out_b = a(x), b(x)
    assert torch.equal(out_a, out_b)
    out_a.square().mean().backward()
    out_b.square().mean().backward()
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa.grad, pb.grad), name


def _levers_space(channels: int) -> Space:
    """Every candidate family the fused op treats apart (convs merged, separable and dilated
    with one pointwise conv each, identity on its own), at a stem's `channels`."""
    cands = ["conv_1x1", "conv_3x3", "conv_5x5", "conv_7x7", "sep_conv_3x3", "sep_conv_5x5",
             "sep_conv_7x7", "dil_conv_3x3", "dil_conv_5x5", "identity"]
    return Space(name="levers", inputs={"x": 3}, nodes={
        "stem": op("conv_3x3", "x", out=channels),
        "m": choice(cands, "stem", act="lrelu"),
        "head": op("conv_1x1", "m", out=3)}, output="head")


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("k", [2, 4])
def test_partial_channels_over_the_fused_kernels_equal_the_plain_ones(k, channels_last):
    """Outputs, weight and arch gradients, and one PC-DARTS step, fused vs plain candidates."""
    from nasflow.accel.levers import prepare_model, to_channels_last

    plain_pc = PCDARTS(config=fast_config(strategy="pcdarts", fuse=False, strategy_options={"k": k}))
    fused_pc = PCDARTS(config=fast_config(strategy="pcdarts", fuse=True, strategy_options={"k": k}))
    assert (plain_pc.mixed_op(), fused_pc.mixed_op()) == (f"partial-k{k}", f"partial-k{k}-fused")
    graph = build_graph(_levers_space(channels=8))
    torch.manual_seed(0)
    plain = compile_graph(graph, mixed_op=plain_pc.mixed_op())
    fused = compile_graph(graph, mixed_op=fused_pc.mixed_op())
    with torch.no_grad():
        for p in plain.arch_parameters():
            p.normal_()
    fused.load_state_dict(plain.state_dict())
    prepare_model(fused, channels_last)
    x = torch.rand(2, 3, 13, 11) * 255
    xf = to_channels_last(x) if channels_last else x

    def grads(model, inp):
        model.zero_grad(set_to_none=True)
        y = model(inp)
        y.square().mean().backward()
        return y.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    y0, g0 = grads(plain, x)
    y1, g1 = grads(fused, xf)
    assert fused.m.ops["conv_3x3"].weight.shape[1] == 8 // k  # the share's candidates
    torch.testing.assert_close(y1, y0, rtol=1e-4, atol=1e-4 * y0.abs().max().item())
    assert g0.keys() == g1.keys() and any("alpha" in n or "arch" in n for n in g0)
    for name in g0:
        scale = g0[name].abs().max().item() + 1e-12
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-4, atol=1e-4 * scale, msg=name)
    # One whole search step each (SGD: small differences stay small): the same parameters after.
    loss = lambda m, b: ((m(b[0]) - b[1]).square().mean(), {})  # noqa: E731
    g = torch.Generator().manual_seed(1)
    batches = [(torch.rand(2, 3, 13, 11, generator=g) * 255, torch.rand(2, 3, 13, 11, generator=g) * 255)
               for _ in range(2)]
    for strategy, model, bs in ((plain_pc, plain, batches), (fused_pc, fused, to_channels_last(batches) if channels_last else batches)):
        strategy.loss_fn = loss
        strategy.w_optimizer = torch.optim.SGD(model.weights(), lr=1e-6)
        strategy.a_optimizer = torch.optim.SGD(model.arch_parameters(), lr=1e-2)
        model.relaxation = strategy.relaxation()
        strategy.step(model, *bs)
    for (name, pa), (_, pb) in zip(plain.named_parameters(), fused.named_parameters()):
        torch.testing.assert_close(pb, pa, rtol=1e-4, atol=1e-5, msg=name)


def test_a_quarter_of_the_channels_goes_through_the_candidates():
    pc = PCDARTS(config=fast_config(strategy="pcdarts", fuse=False))  # the plain candidates run one by one
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
