"""One module (nasflow.compile.state) names a model's tensors: it splits a state dict into
weights and arch, and lays them out in checkpoints; nothing else spells the prefixes."""
from __future__ import annotations

import re
from pathlib import Path

import torch
from toy_spaces import python_space

from nasflow.compile.state import (arch_names, arch_param_name, from_checkpoint, is_arch, split_state,
                                   to_checkpoint)
from nasflow.compile.supernet import compile_graph
from nasflow.space.graph import build_graph

REPO = Path(__file__).resolve().parent.parent


def test_split_state_parts_weights_from_arch():
    graph = build_graph(python_space())
    model = compile_graph(graph)
    state = model.state_dict()
    weights, arch = split_state(state)
    assert sorted(arch) == sorted(arch_param_name(d.kind, label) for label, d in graph.decisions.items())
    assert sorted(arch) == ["arch.alpha.m1", "arch.beta.e3"]
    assert set(weights) | set(arch) == set(state) and not set(weights) & set(arch)
    assert list(weights) == list(model.weights_state_dict()) and list(arch) == list(model.arch_state_dict())
    assert all(weights[k] is state[k] for k in weights) and all(arch[k] is state[k] for k in arch)
    # the optimizers' split: arch parameters are exactly those the names say
    named = dict(model.named_parameters())
    assert {id(named[n]) for n in arch_names(named)} == {id(p) for p in model.arch_parameters()}
    assert [n for n, _ in model.named_weights()] == [n for n in named if not is_arch(n)]


def test_a_block_path_label_is_a_parameter_key():
    assert arch_param_name("alpha", "c1.m1") == "arch.alpha.c1/m1"
    assert not is_arch("c1.arch.op.weight") and not is_arch("archive.weight") and is_arch("arch.beta.e")


def test_checkpoint_layout_round_trips():
    model = compile_graph(build_graph(python_space()))
    state = model.state_dict()
    tensors = to_checkpoint(state)
    assert all(k.startswith("weights.") or is_arch(k) for k in tensors)
    assert tensors["arch.alpha.m1"] is state["arch.alpha.m1"] and "weights.stem.op.weight" in tensors
    weights, arch = from_checkpoint({**tensors, "state.step": torch.tensor(3)})  # other entries: left out
    want_weights, want_arch = split_state(state)
    assert weights.keys() == want_weights.keys() and arch.keys() == want_arch.keys()
    assert all(weights[k] is state[k] for k in weights) and all(arch[k] is state[k] for k in arch)


def test_no_other_module_spells_the_prefixes():
    """'arch.' / 'weights.' key parsing lives in nasflow/compile/state.py alone."""
    spelled = re.compile(r"""(startswith|removeprefix)\(\s*f?["'](arch|weights)\.|f["'](arch|weights)\.\{""")
    found = [f"{path.relative_to(REPO)}:{i}" for folder in ("nasflow", "strategies", "spaces", "cli")
             for path in (REPO / folder).rglob("*.py") if path.name != "state.py"
             for i, line in enumerate(path.read_text().splitlines(), 1) if spelled.search(line)]
    assert not found, f"use nasflow.compile.state (split_state, from_checkpoint, ...) instead at {found}"
