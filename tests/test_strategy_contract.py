"""The strategy contract: mixed-op implementations by name, sparse relaxations that skip
candidates, derivation rules, options (parsed, stored, listed), the per-step hook, a
strategy's state in the checkpoint, and run directories from before strategy options."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from synthetic import CANDIDATES, PlantedTask, fast_config, planted_space
from typer.testing import CliRunner

import nasflow.accel  # noqa: F401  (registers "fused")
from nasflow.compile.mixed_ops import MIXED_OPS, get_mixed_op
from nasflow.compile.relaxation import Relaxation, straight_through
from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import genotype_from_arch
from nasflow.derive.rule import DerivationRule
from nasflow.errors import NasflowError
from nasflow.search.config import SearchConfig, migrate_legacy_options
from nasflow.search.derive_run import derive_run
from nasflow.search.loop import run_search
from nasflow.search.run_dir import RunDir
from nasflow.space.graph import build_graph
from nasflow.strategies import STRATEGIES, Darts, MiLeNAS, get_strategy, register_strategy, strategy_catalog

FIXTURES = Path(__file__).parent / "fixtures"


# --- mixed-op implementations ------------------------------------------------------------------
def test_mixed_op_registry_and_its_error():
    assert {"plain", "fused"} <= set(MIXED_OPS.names())
    graph = build_graph(planted_space())
    assert compile_graph(graph).mixed_op == "plain" and compile_graph(graph, fuse=True).mixed_op == "fused"
    with pytest.raises(NasflowError, match=r"unknown mixed-op implementation 'partial' \(registered: plain, fused"
                                           r".*\); import the module that registers it first"):
        get_mixed_op("partial")
    with pytest.raises(NasflowError, match="contradicts"):
        compile_graph(graph, fuse=True, mixed_op="plain")


class _FirstOnly(Relaxation):
    """Candidate 0 of every decision, straight through."""

    sparse = True

    def __call__(self, arch):
        return {label: straight_through(torch.softmax(arch.logits(label), -1), [0]) for label in arch.decisions}


@pytest.mark.parametrize("impl", ["plain", "fused"])
def test_sparse_relaxation_computes_only_the_kept_candidate(impl):
    torch.manual_seed(0)
    model = compile_graph(build_graph(planted_space()), mixed_op=impl)
    ref = compile_graph(build_graph(planted_space()), mixed_op="plain")
    ref.load_state_dict(model.state_dict())
    calls = {c: 0 for c in CANDIDATES}
    for c, op in model.m.ops.items():
        op.register_forward_hook(lambda mod, args, out, c=c: calls.__setitem__(c, calls[c] + 1))
    model.relaxation = _FirstOnly()
    inputs, _ = PlantedTask().sample(2, torch.Generator().manual_seed(0))
    out = model(**inputs)
    assert calls == {c: int(c == CANDIDATES[0]) for c in CANDIDATES}
    # The same as the full mixed op with one-hot weights (all candidates computed).
    with torch.no_grad():
        for p in ref.arch_parameters():
            p.zero_()
            p[0] = 100.0
    torch.testing.assert_close(out, ref(**inputs), rtol=1e-5, atol=1e-5)
    if impl == "plain":  # ("fused" computes a full mix through its merged kernels, not the modules)
        model.relaxation = Relaxation()  # back to softmax: every candidate runs
        model(**inputs)
        assert all(n == 1 + int(c == CANDIDATES[0]) for c, n in calls.items())


# --- derivation rules ----------------------------------------------------------------------------
class _NoConv(DerivationRule):
    def eligible(self, decision, option):
        return not option.startswith("conv")


def test_derivation_rule_decides_eligibility_and_the_default_is_argmax():
    graph = build_graph(planted_space())
    logits = {"m": torch.tensor([0.0, 0.1, 0.9, 0.2, 0.3, 0.1]), "e": torch.tensor([0.4, 0.1, 0.4, 0.3])}
    assert genotype_from_arch(graph, logits).choices["m"] == "conv_5x5"
    assert genotype_from_arch(graph, logits).edges["e"] == ["u1", "u3"]  # ties: the earlier first
    assert genotype_from_arch(graph, logits, rule=_NoConv()).choices["m"] == "sep_conv_5x5"

    class OnlyConv1(DerivationRule):
        def eligible(self, decision, option):
            return option == "conv_1x1" or decision.kind == "beta"

    assert genotype_from_arch(graph, logits, rule=OnlyConv1()).choices["m"] == "conv_1x1"

    class NoInputs(DerivationRule):
        def eligible(self, decision, option):
            return decision.kind == "alpha"

    with pytest.raises(NasflowError, match="decision 'e' has 0 eligible option"):
        genotype_from_arch(graph, logits, rule=NoInputs())


# --- options -------------------------------------------------------------------------------------
def test_options_are_parsed_with_one_clear_error():
    assert MiLeNAS(config=fast_config(strategy_options={"lambda": 0.25})).options.lam == 0.25
    assert MiLeNAS(config=fast_config(lam=0.25)).options.lam == 0.25  # the former field
    with pytest.raises(NasflowError, match=r"strategy 'milenas' has no option 'lamda' \(its options: lambda, reuse_forward\)"):
        MiLeNAS(config=fast_config(strategy_options={"lamda": 0.25}))
    with pytest.raises(NasflowError, match="strategy 'milenas': option 'lambda': .*greater than or equal to 0"):
        MiLeNAS(config=fast_config(strategy_options={"lambda": -1}))
    with pytest.raises(NasflowError, match="strategy 'darts' has no option 'lambda' \\(its options: arch_first\\)"):
        Darts(config=fast_config(strategy="darts", lam=0.5))


def test_strategies_are_listed_with_their_options():
    from nasflow.cli.main import app

    catalog = {info.name: info for info in strategy_catalog()}
    assert {"darts", "milenas"} <= set(catalog)
    assert catalog["milenas"].summary.startswith("Mixed-level search")
    assert [(n, d) for n, _, d, _ in catalog["milenas"].options] == [("lambda", 1.0), ("reuse_forward", False)]
    listed = CliRunner().invoke(app, ["strategies"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "lambda: float = 1.0" in listed.output and "darts" in listed.output
    helped = CliRunner().invoke(app, ["search", "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
    assert "--strategy-opt" in helped.output and "milenas: lambda=1.0, reuse_forward=False" in helped.output


# --- the per-step hook and the strategy's state ----------------------------------------------------
class _Recording(Darts):
    """DARTS recording the steps it is told of; its count is its state."""

    seen: list[tuple[int, int]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count = 0

    def on_step(self, step: int, total: int) -> None:
        type(self).seen.append((step, total))
        self.count += 1

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = state["count"]


def test_on_step_sees_every_step_and_the_state_survives_resume(tmp_path):
    if "test-recording" not in STRATEGIES:
        register_strategy("test-recording")(_Recording)
    config = fast_config(strategy="test-recording", steps=9, warmup=2, checkpoint_every=3)
    _Recording.seen = []
    run_search(config, tmp_path / "run", space=planted_space(), task=PlantedTask(), stop_at=5)
    assert _Recording.seen == [(s, 9) for s in range(5)]
    assert RunDir(tmp_path / "run").load_checkpoint()[1]["strategy"] == {"count": 5}
    _Recording.seen = []
    run_search(config, tmp_path / "run", task=PlantedTask(), resume=True)
    assert _Recording.seen == [(s, 9) for s in range(5, 9)]
    assert RunDir(tmp_path / "run").load_checkpoint()[1]["strategy"] == {"count": 9}


# --- run directories from before strategy options ------------------------------------------------
def test_migrate_legacy_options():
    old = {"strategy": "milenas", "lambda": 0.5, "reuse_forward": True, "seed": 1}
    assert migrate_legacy_options(old) == {"strategy": "milenas", "seed": 1,
                                           "strategy_options": {"lambda": 0.5, "reuse_forward": True}}
    assert migrate_legacy_options({"lambda": 1.0, "reuse_forward": False}) == {
        "strategy_options": {"lambda": 1.0, "reuse_forward": False}}  # milenas is the default
    # DARTS ignored them: dropped at their old defaults, moved (to be refused) otherwise.
    assert migrate_legacy_options({"strategy": "darts", "lambda": 1.0, "reuse_forward": False}) == {
        "strategy": "darts", "strategy_options": {}}
    assert migrate_legacy_options({"strategy": "darts", "lambda": 0.3})["strategy_options"] == {"lambda": 0.3}
    assert migrate_legacy_options({"seed": 2}) == {"seed": 2}


def test_a_run_written_before_strategy_options_resumes_and_derives(tmp_path):
    """tests/fixtures/milenas_run_v0: MiLeNAS with lambda 0.5 and reuse_forward, stopped at
    step 4 of 6 by the code before this change (its config.json has top-level "lambda" and
    "reuse_forward"); milenas_run_v0_final_arch.safetensors: that code's arch params after
    an uninterrupted 6-step run."""
    run = tmp_path / "old"
    shutil.copytree(FIXTURES / "milenas_run_v0", run)
    assert "lambda" in json.loads((run / "config.json").read_text())
    config = RunDir(run).config()
    assert config.strategy_options == {"lambda": 0.5, "reuse_forward": True}
    result = run_search(config, run, task=PlantedTask(), resume=True)
    assert result.finished and result.step == 6
    arch, _ = RunDir(run).load_arch()
    want = load_file(str(FIXTURES / "milenas_run_v0_final_arch.safetensors"))
    assert arch.keys() == want.keys()
    for k in want:
        # lambda and reuse_forward kept their meaning: equal to float rounding, as the fused
        # kernels' order of summation may change (it did, issue 28); a changed meaning moves them far more
        torch.testing.assert_close(arch[k], want[k], rtol=1e-5, atol=1e-6, msg=k)
    assert derive_run(run).genotype.choices["m"] in CANDIDATES
    # The same run described as new code does: equal, so the resume check accepts it.
    assert not config.differences(fast_config(steps=6, warmup=2, batch_size=4, log_every=1, checkpoint_every=2,
                                              strategy_options={"lambda": 0.5, "reuse_forward": True}))


def test_resume_reports_a_changed_strategy_option_by_name(tmp_path):
    from nasflow.errors import RunError

    config = fast_config(steps=4, warmup=1)
    run_search(config, tmp_path / "run", space=planted_space(), task=PlantedTask())
    same = config.model_copy(update={"strategy_options": {"lambda": 1.0}})  # the default, spelt out
    assert run_search(same.model_copy(update={"steps": 5}), tmp_path / "run", task=PlantedTask(), resume=True).step == 5
    with pytest.raises(RunError, match=r"reuse_forward: run False, now True"):
        run_search(config.model_copy(update={"strategy_options": {"reuse_forward": True}}), tmp_path / "run",
                   task=PlantedTask(), resume=True)


def test_darts_defaults_are_unchanged_by_the_contract():
    """The contract's defaults are what the loop did before: fused softmax, Adam with the
    config's settings, argmax rule, no state."""
    config = SearchConfig()
    strategy = get_strategy("darts")(config=config)
    model = compile_graph(build_graph(planted_space()), mixed_op=strategy.mixed_op())
    strategy.attach(model)
    assert strategy.mixed_op() == "fused" and type(model.relaxation) is Relaxation
    w, a = strategy.w_optimizer, strategy.a_optimizer
    assert isinstance(w, torch.optim.Adam) and isinstance(a, torch.optim.Adam)
    assert a.defaults["betas"] == (0.5, 0.999) and w.defaults["lr"] == 3e-4 and w.defaults["weight_decay"] == 1e-8
    assert type(strategy.derivation_rule()) is DerivationRule and strategy.state_dict() == {}


# --- what the space declares: never_derive --------------------------------------------------------
NEVER_SPACE = """\
name: never
inputs: {x: 4}
nodes:
  m: {choice: [conv_1x1, conv_3x3, identity], in: x, never_derive: [identity]}
  head: {op: conv_1x1, in: m, out: 4}
output: head
"""


def test_the_space_marks_candidates_never_derived(tmp_path):
    from toy_spaces import yaml_space_file

    from nasflow.derive.genotype import derive_space
    from nasflow.errors import SpaceError
    from nasflow.space.load import load_space

    space = load_space(yaml_space_file(tmp_path, NEVER_SPACE))
    graph = build_graph(space)
    assert graph.decisions["m"].never_derive == ("identity",)
    logits = {"m": torch.tensor([0.1, 0.2, 3.0])}  # identity is the arch's favourite
    geno = genotype_from_arch(graph, logits)
    assert geno.choices["m"] == "conv_3x3"  # the default rule honours the space
    assert derive_space(space, geno).nodes["m"].op == "conv_3x3"

    class Anything(DerivationRule):  # a strategy's rule that overrides eligibility decides alone
        def eligible(self, decision, option):
            return True

    assert genotype_from_arch(graph, logits, rule=Anything()).choices["m"] == "identity"
    bad = NEVER_SPACE.replace("never_derive: [identity]", "never_derive: [zero]")
    with pytest.raises(SpaceError, match=r"space.yaml:4.*never_derive names zero, not among its candidates"):
        build_graph(load_space(yaml_space_file(tmp_path, bad)))
    every = NEVER_SPACE.replace("never_derive: [identity]", "never_derive: [conv_1x1, conv_3x3, identity]")
    with pytest.raises(SpaceError, match="excludes every candidate"):
        build_graph(load_space(yaml_space_file(tmp_path, every)))
