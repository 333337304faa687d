"""DLSR with searched widths (spaces/dlsr/space-width.yaml): the channel width and ESA's inner
width as value decisions next to the op and input choices.

Its DLSR-S picks derive DLSR-S itself (the released weights load), the supernet restricted to
a width computes what the derived model with inherited weights computes (ESA included), and
a budgeted search runs from the command line and derives plain widths.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasflow.cli.main import app
from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import Genotype, derive_space, inherit_weights
from nasflow.space.cost import graph_cost
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space
from nasflow.spaces.dlsr.data import load_rgb
from nasflow.spaces.dlsr.evaluate import default_bench
from nasflow.spaces.dlsr.images import to_tensor
from one_hot import OneHot

DLSR_DIR = Path(__file__).resolve().parents[2] / "spaces" / "dlsr"
EDGES = {"cell3_in": ["cell1", "cell2"], "cell4_in": ["cell2", "cell3"], "cell5_in": ["cell2", "cell4"],
         "cell6_in": ["cell4", "cell5"]}
DLSR_S = Genotype({"mrb1": "conv_1x1", "mrb2": "sep_conv_7x7", "mrb3": "sep_conv_5x5"}, EDGES,
                  {"channels": 18, "esa_f": 4})


def test_the_width_space_at_dlsr_s_picks_is_dlsr_s() -> None:
    width = load_space(DLSR_DIR / "space-width.yaml")
    derived = build_graph(derive_space(width, DLSR_S))
    dlsr_s = build_graph(load_space(DLSR_DIR / "dlsr-s.yaml"))
    assert graph_cost(derived, (360, 640)).params == graph_cost(dlsr_s, (360, 640)).params == 56_268
    shapes = {k: v.shape for k, v in compile_graph(derived).state_dict().items()}
    assert shapes == {k: v.shape for k, v in compile_graph(dlsr_s).state_dict().items()}


def test_the_released_dlsr_s_weights_run_in_the_derived_width_architecture(shared_dir: Path) -> None:
    from nasflow.spaces.dlsr.importer import convert, read_checkpoint

    weights = shared_dir / "weights" / "dlsr" / "RFDN_beta21_tiny18_ps128_20210306_lr4_700.pt"
    if not weights.is_file():
        pytest.skip(f"{weights} is absent")
    derived = derive_space(load_space(DLSR_DIR / "space-width.yaml"), DLSR_S)
    state = convert(read_checkpoint(weights)[0], load_space(DLSR_DIR / "dlsr-s.yaml"))
    a, b = compile_graph(build_graph(derived)).eval(), compile_graph(build_graph(load_space(DLSR_DIR / "dlsr-s.yaml"))).eval()
    a.load_state_dict(state)
    b.load_state_dict(state)
    x = to_tensor(load_rgb(default_bench() / "butterfly.png")[100:124, 100:124])[None]
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("channels, esa_f", [(8, 2), (12, 3), (8, 3)])
def test_a_width_of_the_supernet_is_its_derived_model_with_inherited_weights(channels: int, esa_f: int) -> None:
    torch.manual_seed(0)
    space = load_space(DLSR_DIR / "space-width.yaml").model_copy(update={"values": {"channels": [8, 12], "esa_f": [2, 3]}})
    graph = build_graph(space)
    net = compile_graph(graph).eval()
    geno = Genotype({"mrb1": "conv_3x3", "mrb2": "sep_conv_3x3", "mrb3": "dil_conv_3x3"},
                    {"cell3_in": ["cell2", "cell1"], "cell4_in": ["cell3", "cell1"], "cell5_in": ["cell4", "cell2"],
                     "cell6_in": ["cell5", "cell3"]}, {"channels": channels, "esa_f": esa_f})
    derived = build_graph(derive_space(space, geno))
    model = compile_graph(derived).eval()
    model.load_state_dict(inherit_weights(graph, net.state_dict(), derived, model.state_dict(), geno.values))
    picks = {label: [d.options.index(geno.choices[label])] for label, d in graph.decisions.items() if d.kind == "alpha"}
    picks.update({label: [d.values.index(geno.values[label])] for label, d in graph.decisions.items() if d.kind == "value"})
    # A dense node's beta orders nothing in the supernet: one-hot top-2 is its two inputs at weight 1.
    picks.update({label: [d.options.index(i) for i in geno.edges[label]]
                  for label, d in graph.decisions.items() if d.kind == "beta"})
    x = to_tensor(load_rgb(default_bench() / "butterfly.png")[100:120, 100:120])[None]
    with torch.no_grad():
        want = model(x)
        for sparse in (True, False):  # sliced, and masked weights at one-hot
            net.relaxation = OneHot(picks, sparse)
            torch.testing.assert_close(net(x), want, rtol=1e-4, atol=1e-3)


def test_a_budgeted_search_on_the_command_line_derives_plain_widths(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    done = runner.invoke(app, ["search", str(DLSR_DIR / "space-width.yaml"), "--strategy", "milenas", "--out", str(out),
                               "--steps", "6", "--warmup", "2", "--batch", "2", "--budget", "params=56k",
                               "--levers", "given", "--task-opt", "patch=32"])
    assert done.exit_code == 0, done.output
    derived = runner.invoke(app, ["derive", str(out)])
    assert derived.exit_code == 0, derived.output
    import json

    values = json.loads((out / "derived" / "genotype.json").read_text())["values"]
    assert set(values) == {"channels", "esa_f"}
    arch = load_space(out / "derived" / "arch.yaml")
    assert not arch.values and arch.params["channels"] == values["channels"]
    assert not build_graph(arch).decisions
