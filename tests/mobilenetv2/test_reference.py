"""spaces/mobilenetv2's fixed points are torchvision's MobileNetV2, exactly: the architecture
that picks MobileNetV2's own values (kernel 3, expansion 6, torchvision's depths and the
widths of multiplier m) has torchvision's parameter count, every tensor with torchvision's
shape and its Multi-Adds, at m = 0.5, 0.75 and 1.0; and torchvision's weights load into it
and give torchvision's outputs. The reference numbers come from running torchvision once
(tests/fixtures/make_mobilenetv2_fixture.py; its version is in the fixture's metadata)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from nasflow import Space, build_graph, compile_graph
from nasflow.errors import NasflowError
from nasflow.space.cost import graph_cost
from nasflow.spaces.mobilenetv2.points import DEPTHS, WIDTHS, values
from nasflow.spaces.mobilenetv2.weights import from_torchvision, prefixes, torchvision_name

ROOT = Path(__file__).resolve().parents[2]
SPACE = ROOT / "spaces" / "mobilenetv2" / "space.yaml"
FIXTURE = ROOT / "tests" / "fixtures" / "mobilenetv2_torchvision.safetensors"


@pytest.fixture(scope="module")
def meta() -> dict[str, str]:
    with safe_open(str(FIXTURE), "pt") as f:
        return f.metadata()


def _model(width_mult: float, classes: int) -> torch.nn.Module:
    space = Space.from_yaml(SPACE).with_params({"classes": classes})
    return compile_graph(build_graph(space, values=values(width_mult)))


@pytest.mark.parametrize("m", [0.5, 0.75, 1.0])
def test_params_shapes_and_madds_equal_torchvisions(meta, m):
    space = Space.from_yaml(SPACE).with_params({"classes": 1000})
    graph = build_graph(space, values=values(m))
    model = compile_graph(graph)
    params = sum(p.numel() for p in model.parameters())
    assert params == int(meta[f"params_{m}"]), f"torchvision {meta['torchvision']}"
    assert graph_cost(graph, (224, 224)).params == params
    # Every tensor, under torchvision's name, has torchvision's shape; none is left over.
    ours = model.state_dict()
    pairs = prefixes(ours)
    theirs = json.loads(meta[f"shapes_{m}"])
    assert {torchvision_name(n, pairs): list(t.shape) for n, t in ours.items()} == theirs
    # Multi-Adds of a 224 x 224 image: the cost model against counting the reference.
    assert graph_cost(graph, (224, 224)).madds == int(meta[f"madds_224_{m}"])
    # The same numbers from the search space's own tables (the value decisions' Syms).
    report = graph_cost(build_graph(space), (224, 224))
    assert report.at(values(m)) == (params, int(meta[f"madds_224_{m}"]))


def test_the_points_are_torchvisions_widths_and_depths(meta):
    """The width lists in points.py follow MobileNetV2's rounding (to a multiple of 8, at least
    8, not below 90% of the exact width), and the space searches exactly those widths."""
    def rounded(v: float) -> int:
        r = max(8, int(v + 4) // 8 * 8)
        return r + 8 if r < 0.9 * v else r

    base = (32, 16, 24, 32, 64, 96, 160, 320)
    for m, widths in WIDTHS.items():
        assert widths == tuple(rounded(c * m) for c in base)
    space = Space.from_yaml(SPACE)
    for s in range(8):
        assert space.values[f"W{s}"] == sorted({WIDTHS[m][s] for m in WIDTHS})
    theirs = json.loads(meta["shapes_1.0"])
    blocks = {k.split(".")[1] for k in theirs if k.startswith("features.")}
    assert len(blocks) == 2 + sum(DEPTHS)  # the stem, the blocks, the last conv


def test_torchvision_weights_load_and_give_its_outputs(meta):
    """torchvision's mobilenet_v2(width_mult=0.5, num_classes=10), its weights rounded to
    float16, loads into the derived architecture by renaming; eval-mode outputs agree."""
    fx = load_file(str(FIXTURE))
    state = {k[len("state."):]: (v.float() if v.is_floating_point() else v)
             for k, v in fx.items() if k.startswith("state.")}
    width, classes = float(meta["width_mult"]), int(meta["num_classes"])
    space = Space.from_yaml(SPACE).with_params({"classes": classes})
    derived = space.fix_values(values(width))  # the architecture as a space with no decisions
    graph = build_graph(derived)
    assert graph.is_derived and not graph.value_decisions
    model = compile_graph(graph).eval()
    model.load_state_dict(from_torchvision(state, model.state_dict()), strict=True)
    with torch.no_grad():
        got = model(fx["input"].float())
    want = fx["output"]
    assert got.shape == want.shape == (2, classes)
    diff = float((got - want).abs().max())
    assert diff <= 1e-5, f"max |nasflow - torchvision {meta['torchvision']}| = {diff:.3g}"
    # The check has teeth: the same weights without torchvision's BatchNorm statistics miss by far.
    stats = {k: v for k, v in model.state_dict().items() if "running_" in k}
    model.load_state_dict({**model.state_dict(), **{k: torch.zeros_like(v) if "mean" in k else torch.ones_like(v)
                                                    for k, v in stats.items()}})
    with torch.no_grad():
        assert float((model(fx["input"].float()) - want).abs().max()) > 1e-2


def test_a_state_of_other_depths_is_refused():
    fx = load_file(str(FIXTURE))
    state = {k[len("state."):]: v for k, v in fx.items() if k.startswith("state.")}
    space = Space.from_yaml(SPACE)
    model = compile_graph(build_graph(space, values={**values(0.5), "D4": 3}))
    with pytest.raises(NasflowError, match="19 feature modules .* model 18: the depths differ"):
        from_torchvision(state, model.state_dict())
    model = compile_graph(build_graph(space, values={**values(0.5), "K4": 5}))
    with pytest.raises(NasflowError, match=r"'features.7.conv.1.0.weight' is \(96, 1, 3, 3\) .* "
                       r"'s4.dw.op.0.weight' is \(96, 1, 5, 5\)"):
        from_torchvision(state, model.state_dict())
