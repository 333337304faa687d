"""Extension contracts that hold when a user's code is wrong (issue 24).

1. Whatever search accepted (a strategy registered by a module the space imports, or named
   'module:Class' from the current folder) derive, report and resume accept from the run
   directory alone, moved elsewhere.
2. Every value a user's hook returns is checked where it enters the engine: a wrong one is one
   HookError naming the hook, the expected type and what came back (one test per hook).
3. `derive SPACE --arch FILE`: the documented key formats, a mismatch naming the missing and
   unexpected keys.
4. Resume may change `steps`: refused with a cosine schedule, else a warning saying what bends.
"""
from __future__ import annotations

import shutil
import sys
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from synthetic import PlantedTask, fast_config, planted_space
from torch import nn
from typer.testing import CliRunner

from nasflow.cli.main import app
from nasflow.compile.relaxation import Relaxation
from nasflow.compile.supernet import compile_graph
from nasflow.derive.genotype import genotype_from_arch
from nasflow.derive.rule import DerivationRule
from nasflow.errors import HookError, NasflowWarning, RunError
from nasflow.ops.registry import OPS, register_op
from nasflow.search.derive_run import derive_from_arch
from nasflow.search.loop import run_search
from nasflow.search.regularizers import REGULARIZERS, register_regularizer
from nasflow.space.cost import graph_cost
from nasflow.space.graph import build_graph
from nasflow._plugins import _LOCAL_PLUGINS
from nasflow.space.imports import _LOCAL, ENV
from nasflow.space.schema import Space, choice, op
from nasflow.strategies import STRATEGIES, Darts
from nasflow.tasks.contract import Evaluation, checked_evaluation

TESTS = Path(__file__).resolve().parent
runner = CliRunner()


# --- 1. a run directory alone finds its strategy ---------------------------------------------
def _search(tmp: Path, strategy: str) -> None:
    result = runner.invoke(app, ["--trust-imports", "search", "space.yaml", "--strategy", strategy, "--steps", "4",
                                 "--warmup", "1", "--out", "run", "--batch", "4", "--device", "cpu",
                                 "--task-opt", "keep=1.0", "--snapshot-steps", "none", "--log-every", "2",
                                 "--checkpoint-every", "2", "-q", "--levers", "given"])
    assert result.exit_code == 0, result.output + repr(result.exception)


@pytest.mark.parametrize("how", ["registered", "module:Class"])
def test_a_moved_run_of_a_plugin_strategy_derives_reports_and_resumes(tmp_path, monkeypatch, how):
    name = f"strat_{uuid.uuid4().hex[:8]}"
    src, other = tmp_path / "src", tmp_path / "other"
    src.mkdir()
    other.mkdir()
    register = f"@register_strategy('{name}')\n" if how == "registered" else ""
    (src / f"{name}.py").write_text("from nasflow.strategies import Darts, register_strategy\n"
                                    f"{register}class Mine(Darts):\n    '''first-order DARTS, renamed'''\n")
    imports = f"imports: [{name}]\n" if how == "registered" else ""
    (src / "space.yaml").write_text(
        f"name: moved\ntask: synthetic:PlantedTask\n{imports}params: {{C: 4}}\ninputs: {{x: C, y: C}}\n"
        "nodes:\n  m: {choice: [conv_1x1, conv_3x3], in: x}\n  out: {combine: add, in: [m, y]}\noutput: out\n")
    monkeypatch.setattr(sys, "path", [*sys.path, str(TESTS)])
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.chdir(src)
    try:
        _search(src, name if how == "registered" else f"{name}:Mine")
        assert (src / "run" / f"{name}.py").is_file()  # the run carries the strategy's module
        shutil.move(src / "run", other / "run")
        shutil.rmtree(src)
        _forget(name)  # as a new process would be: the module unimported, the name unregistered
        monkeypatch.chdir(other)
        for args in (["derive", "run"], ["report", "run"], ["plot", "run"]):
            done = runner.invoke(app, ["--trust-imports", *args])
            assert done.exit_code == 0, (args, done.output, repr(done.exception))
        with pytest.warns(NasflowWarning, match="steps changed from 4 to 6"):
            resumed = runner.invoke(app, ["--trust-imports", "search", "--resume", "--out", "run", "--steps", "6", "-q"])
        assert resumed.exit_code == 0, resumed.output + repr(resumed.exception)
    finally:
        _forget(name)


def _forget(module: str) -> None:
    sys.modules.pop(module, None)
    _LOCAL.pop(module, None)
    _LOCAL_PLUGINS.pop(module, None)
    if module in STRATEGIES:
        STRATEGIES.remove(module)


# --- 2. every hook's return is checked where it enters -----------------------------------------
@pytest.fixture
def temp_op():
    """Register ops for one test; removed after."""
    names: list[str] = []

    def add(**spec: Any) -> str:
        name = f"bad_{uuid.uuid4().hex[:8]}"
        register_op(name, **spec)(lambda c_in, c_out: nn.Conv2d(c_in, c_out, 1, bias=False))
        names.append(name)
        return name

    yield add
    for name in names:
        OPS.remove(name)


def _space(op_name: str) -> Space:
    return Space(name="t", params={"C": 4}, inputs={"x": "C"},
                 nodes={"m": choice([op_name, "conv_3x3"], "x"), "o": op("conv_1x1", "m", out=3)}, output="o")


@pytest.mark.parametrize("hook,spec,expected", [
    ("params", {"params": lambda c_in, c_out: 1.5, "madds_per_pixel": lambda c_in, c_out: 1}, "an int >= 0"),
    ("madds", {"params": lambda c_in, c_out: c_in * c_out, "madds_per_pixel": lambda c_in, c_out: -1}, "an int >= 0"),
    ("resize", {"params": lambda c_in, c_out: c_in * c_out, "resize": lambda: 0.5}, "a positive int or fractions"),
    ("out_channels", {"params": lambda c_in, c_out: c_in * c_out, "out_channels": lambda c_in: "4"}, "an int >= 0"),
    ("check", {"params": lambda c_in, c_out: c_in * c_out, "check": lambda c_in, c_out: False}, "None .fits. or a str"),
])
def test_an_op_hook_returning_the_wrong_type_is_one_error_naming_it(temp_op, hook, spec, expected):
    name = temp_op(**spec)
    with pytest.raises(HookError, match=rf"^op '{name}' {hook} returned \w+ .*; expected {expected}"):
        graph_cost(build_graph(_space(name)), (8, 8))


def test_a_fraction_resize_is_accepted(temp_op):
    name = temp_op(params=lambda c_in, c_out: c_in * c_out, resize=lambda: Fraction(1))
    assert graph_cost(build_graph(_space(name)), (8, 8)).params > 0


class _Returns(Darts):
    """Darts whose hook `self.bad` returns `self.value` (set per test)."""

    bad = ""
    value: Any = None

    def _maybe(self, hook: str, good: Any) -> Any:
        return self.value if hook == self.bad else good

    def mixed_op(self) -> Any:
        return self._maybe("mixed_op", super().mixed_op())

    def relaxation(self) -> Any:
        return self._maybe("relaxation", super().relaxation())

    def derivation_rule(self) -> Any:
        return self._maybe("derivation_rule", super().derivation_rule())

    def optimizers(self, model: Any) -> Any:
        return self._maybe("optimizers", super().optimizers(model))

    def schedule(self, w: Any) -> Any:
        return self._maybe("schedule", super().schedule(w))

    def arch_gradient(self, model: Any, t: Any, v: Any) -> Any:
        return self._maybe("arch_gradient", super().arch_gradient(model, t, v))

    def step(self, model: Any, t: Any, v: Any) -> Any:
        return self._maybe("step", super().step(model, t, v))

    def state_dict(self) -> Any:
        return self._maybe("state_dict", super().state_dict())

    def finish(self, end: Any) -> Any:
        return self._maybe("finish", super().finish(end))


class _Softmax3(Relaxation):
    def __call__(self, arch: Any) -> Any:
        return {label: torch.ones(3) for label in arch.decisions}


@pytest.mark.parametrize("hook,value,expected", [
    ("mixed_op", 3, "a mixed-op name"),
    ("relaxation", "softmax", "a nasflow.compile.relaxation.Relaxation"),
    ("relaxation", _Softmax3(), r"a dict \{decision label: 1-D tensor"),
    ("derivation_rule", None, "a nasflow.derive.rule.DerivationRule"),
    ("optimizers", None, r"a tuple \(weights optimizer, arch optimizer or None\)"),
    ("schedule", 0.5, "None or an lr scheduler"),
    ("arch_gradient", [torch.zeros(1)], r"a tuple \(list of \d+ tensors"),
    ("step", {"loss": "low"}, r"a dict \{name: float\}"),
    ("state_dict", [1, 2], "a dict"),
    ("finish", {"m": "conv_1x1"}, "a nasflow.derive.genotype.Genotype or None"),
])
def test_a_strategy_hook_returning_the_wrong_type_is_one_error_naming_it(tmp_path, monkeypatch, hook, value, expected):
    name = f"returns_{uuid.uuid4().hex[:6]}"
    cls = type(name, (_Returns,), {"bad": hook, "value": value, "name": name})
    monkeypatch.setattr("nasflow.search.loop.strategy_class", lambda config, run_dir=None: cls)
    config = fast_config(strategy=name, steps=3, warmup=1, checkpoint_every=3)
    owner = "relaxation _Softmax3" if isinstance(value, Relaxation) else f"strategy '{name}' {hook}"
    with pytest.raises(HookError, match=rf"^{owner}.* returned .*; expected {expected}"):
        run_search(config, tmp_path / "run", space=planted_space(), task=PlantedTask())


class _BadScores(DerivationRule):
    def scores(self, decision: Any, logits: Any) -> Any:
        return logits.tolist()


class _BadPick(DerivationRule):
    def pick(self, decision: Any, logits: Any, k: int, scores: Any = None) -> Any:
        return "conv_1x1"


@pytest.mark.parametrize("rule,hook,expected", [
    (_BadScores(), "scores", "a 1-D tensor of 6 scores"),
    (_BadPick(), "pick", "a list of 1 distinct option"),
])
def test_a_derivation_rule_returning_the_wrong_type_is_one_error_naming_it(rule, hook, expected):
    graph = build_graph(planted_space())
    logits = {label: torch.zeros(len(d.options)) for label, d in graph.decisions.items()}
    with pytest.raises(HookError, match=rf"^derivation rule {type(rule).__name__} {hook} returned .*; expected {expected}"):
        genotype_from_arch(graph, logits, rule=rule)


class _TaskReturns(PlantedTask):
    bad = ""
    value: Any = None

    def batches(self, split: str, batch_size: int, seed: int, *, rank: int = 0, world_size: int = 1) -> Any:
        got = super().batches(split, batch_size, seed, rank=rank, world_size=world_size)
        return self.value if self.bad == "batches" else got

    def loss(self, model: Any, batch: Any) -> Any:
        got = super().loss(model, batch)
        return self.value if self.bad == "loss" else got

    def state_dict(self) -> Any:
        return self.value if self.bad == "state_dict" else super().state_dict()


@pytest.mark.parametrize("hook,value,expected", [
    ("batches", [1, 2], "an iterator of batches"),
    ("loss", 0.5, r"a tuple \(scalar tensor, \{term: number\}\)"),
    ("loss", (torch.zeros(2), {}), r"a tuple \(scalar tensor"),
    ("state_dict", None, "a dict"),
])
def test_a_task_hook_returning_the_wrong_type_in_search_is_one_error_naming_it(tmp_path, hook, value, expected):
    task = type("Bad", (_TaskReturns,), {"bad": hook, "value": value, "name": "bad"})()
    config = fast_config(strategy="darts", steps=3, warmup=1, checkpoint_every=3)
    with pytest.raises(HookError, match=rf"^task 'bad' {hook} returned .*; expected {expected}"):
        run_search(config, tmp_path / "run", space=planted_space(), task=task)


def test_a_benchmark_returning_a_plain_dict_is_one_error_saying_how_to_wrap_it():
    task = PlantedTask()
    with pytest.raises(HookError, match=r"^task 'planted' benchmark returned dict \{'psnr': 30.0\}; expected a "
                                        r"nasflow.tasks.Evaluation \(wrap the metrics: Evaluation"):
        checked_evaluation(task, {"psnr": 30.0})
    with pytest.raises(HookError, match=r"benchmark's Evaluation.metrics returned .*entry 'psnr' is str"):
        checked_evaluation(task, Evaluation({"psnr": "high"}))
    assert checked_evaluation(task, Evaluation({"psnr": torch.tensor(30.0)})).metrics == {"psnr": 30.0}


def test_evaluate_model_meta_and_export_hooks_are_checked():
    from nasflow.tasks.contract import checked_axes, checked_metrics, checked_sample

    with pytest.raises(HookError, match=r"^task 'planted' evaluate returned list \[1\]; expected a dict"):
        checked_metrics(PlantedTask(), "evaluate", [1])
    with pytest.raises(HookError, match=r"^task 'planted' sample_input returned ndarray"):
        import numpy as np
        checked_sample(PlantedTask, np.zeros(3))
    with pytest.raises(HookError, match=r"^task 'planted' dynamic_axes returned dict"):
        checked_axes(PlantedTask, {0: "n"})


def test_a_regularizer_returning_the_wrong_type_is_one_error_naming_it(tmp_path):
    name = f"reg_{uuid.uuid4().hex[:6]}"
    register_regularizer(name)(lambda graph: (lambda model: 0.1))
    try:
        config = fast_config(strategy="darts", steps=3, warmup=1, checkpoint_every=3, regularizer=name, gamma=0.1)
        with pytest.raises(HookError, match=rf"^regularizer '{name}' returned float 0.1; expected a tuple "
                                            r"\(scalar tensor penalty, \{term: float\}\)"):
            run_search(config, tmp_path / "run", space=planted_space(), task=PlantedTask())
    finally:
        REGULARIZERS.remove(name)


def test_node_kind_hooks_are_checked():
    from nasflow.space.kinds import checked_cost_ops, checked_refs

    with pytest.raises(HookError, match=r"^node kind 'repeat' refs returned str 'x'; expected a list of references"):
        checked_refs("repeat", "x")
    with pytest.raises(HookError, match=r"^node kind 'repeat' cost_ops returned list .*; expected a list of \(op name"):
        checked_cost_ops("repeat", [("conv_1x1", 4.0)])


def test_the_cli_prints_a_hook_error_as_one_line(tmp_path, temp_op, monkeypatch):
    name = temp_op(params=lambda c_in, c_out: c_in * c_out, resize=lambda: 0.5)
    path = tmp_path / "s.yaml"
    path.write_text(_space(name).to_yaml())
    done = runner.invoke(app, ["cost", str(path), "--size", "8x8"])
    # a NasflowError: `nasflow` (cli.app.run) prints it as one 'error:' line and exits 2
    assert isinstance(done.exception, HookError) and "\n" not in str(done.exception)
    assert str(done.exception).startswith(f"op '{name}' resize returned float 0.5; expected a positive int or "
                                          "fractions.Fraction")


# --- 3. derive --arch: the documented keys, a mismatch named -----------------------------------
def test_derive_arch_reads_the_documented_keys_and_names_missing_and_unexpected(tmp_path):
    space = planted_space()
    path = tmp_path / "space.yaml"
    path.write_text(space.to_yaml())
    model = compile_graph(build_graph(space))
    with torch.no_grad():
        model.arch.logits("m")[2] = 5.0
    own = {k: v.detach().clone() for k, v in model.arch.state_dict().items()}  # 'alpha.m', 'beta.e'
    save_file(own, tmp_path / "arch.safetensors")
    derived = derive_from_arch(path, tmp_path / "arch.safetensors", out=tmp_path / "d1")
    assert derived.genotype.choices["m"] == space.nodes["m"].choice[2]
    save_file({f"arch.{k}": v for k, v in own.items()}, tmp_path / "full.safetensors")
    assert derive_from_arch(path, tmp_path / "full.safetensors", out=tmp_path / "d2").genotype == derived.genotype
    save_file({"arch.alpha.m": own["alpha.m"], "arch.beta.edge": own["beta.e"]}, tmp_path / "wrong.safetensors")
    with pytest.raises(Exception, match=r"missing 'arch.beta.e'; unexpected 'arch.beta.edge' \(keys are "
                                        r"'arch.<alpha\|beta\|value>.<label>'"):
        derive_from_arch(path, tmp_path / "wrong.safetensors", out=tmp_path / "d3")


# --- 4. what a resume may change ---------------------------------------------------------------
def test_resume_with_other_steps_warns_or_is_refused_with_a_cosine_schedule(tmp_path):
    config = fast_config(strategy="darts", steps=4, warmup=1, checkpoint_every=2)
    run_search(config, tmp_path / "a", space=planted_space(), task=PlantedTask())
    with pytest.warns(NasflowWarning, match="steps changed from 4 to 6: .*not that of an uninterrupted 6-step"):
        run_search(config.model_copy(update={"steps": 6}), tmp_path / "a", task=PlantedTask(), resume=True)
    cosine = fast_config(strategy="darts", steps=4, warmup=1, checkpoint_every=2, weights_schedule="cosine")
    run_search(cosine, tmp_path / "b", space=planted_space(), task=PlantedTask())
    with pytest.raises(RunError, match=r"cannot resume with steps 6: the run's cosine lr schedule is laid over its 4 "
                                       r"steps .*resume with --steps 4"):
        run_search(cosine.model_copy(update={"steps": 6}), tmp_path / "b", task=PlantedTask(), resume=True)
