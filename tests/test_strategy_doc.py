"""docs/writing-a-strategy.md's example strategy, run as the doc prints it: a hard Gumbel
sampler written outside the project. Only the drawn candidate runs, the derivation rule it
sets is the one `derive` uses, and stop + resume equals an uninterrupted run (arch params and
the strategy's own state: temperature and generator)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from synthetic import CANDIDATES, PlantedTask, fast_config, planted_space, register_task
from typer.testing import CliRunner

from nasflow.compile.supernet import compile_graph
from nasflow.search.derive_run import derive_run
from nasflow.search.loop import run_search
from nasflow.search.run_dir import RunDir
from nasflow.space.graph import build_graph
from nasflow.strategies import Strategy, get_strategy

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-strategy.md"
MODULE = "doc_hard_gumbel"
NAME = f"{MODULE}:HardGumbel"


@pytest.fixture(scope="module")
def doc_strategy(tmp_path_factory: pytest.TempPathFactory) -> type[Strategy]:
    """The doc's ```python block, written to a file and loaded by 'module:Class'."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "the doc should hold exactly one python example"
    folder = tmp_path_factory.mktemp("doc_strategy")
    (folder / f"{MODULE}.py").write_text(blocks[0])
    sys.path.insert(0, str(folder))
    try:
        yield get_strategy(NAME)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(MODULE, None)


def _config(**changes):
    return fast_config(strategy=NAME, **changes)


def test_only_the_drawn_candidate_runs(doc_strategy):
    strategy = doc_strategy(config=_config(strategy_options={"tau_max": 2.0}))
    torch.manual_seed(0)
    model = compile_graph(build_graph(planted_space()), mixed_op=strategy.mixed_op())
    strategy.attach(model)
    calls = {c: 0 for c in CANDIDATES}
    for c, op in model.m.ops.items():
        op.register_forward_hook(lambda mod, args, out, c=c: calls.__setitem__(c, calls[c] + 1))
    inputs, target = PlantedTask().sample(2, torch.Generator().manual_seed(0))
    drawn = set()
    for _ in range(12):
        before = dict(calls)
        out = model(**inputs)
        ran = [c for c in CANDIDATES if calls[c] != before[c]]
        assert len(ran) == 1 and calls[ran[0]] == before[ran[0]] + 1  # one candidate, once
        drawn.add(ran[0])
    assert len(drawn) > 1  # the draws vary: it samples, it does not pick a fixed op
    # Straight through: every alpha entry gets a gradient though one candidate ran.
    torch.nn.functional.mse_loss(out, target).backward()
    grad = model.arch.logits("m").grad
    assert grad is not None and bool((grad != 0).all())


def test_search_anneals_and_derive_uses_the_rule(doc_strategy, tmp_path):
    # conv_5x5 is the planted op: a search finds it; the rule must then refuse it.
    options = {"tau_max": 4.0, "tau_min": 0.5, "never_derive": "conv_5x5"}
    config = _config(steps=40, warmup=5, strategy_options=options, checkpoint_every=40)
    result = run_search(config, tmp_path / "run", space=planted_space(), task=PlantedTask())
    state = RunDir(tmp_path / "run").load_checkpoint()[1]["strategy"]
    assert state["tau"] == pytest.approx(0.5)  # annealed over the run, in its own state
    assert result.genotype.choices["m"] != "conv_5x5"
    # Make conv_5x5 the arch's favourite: the default rule would derive it, this one must not.
    tensors, ckpt = RunDir(tmp_path / "run").load_checkpoint()
    key = "arch.alpha.m"
    favourite = torch.zeros_like(tensors[key])
    favourite[CANDIDATES.index("conv_5x5")] = 5.0
    favourite[CANDIDATES.index("sep_conv_3x3")] = 4.0
    RunDir(tmp_path / "run").save_checkpoint({**tensors, key: favourite}, ckpt)
    assert derive_run(tmp_path / "run").genotype.choices["m"] == "sep_conv_3x3"
    assert derive_run(tmp_path / "run", rule=get_strategy("darts")().derivation_rule(),
                      out=tmp_path / "plain").genotype.choices["m"] == "conv_5x5"


def _final(run: Path) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, state = RunDir(run).load_checkpoint()
    return {k: v for k, v in tensors.items() if k.startswith("arch.")}, state["strategy"]


def test_stop_and_resume_equals_an_uninterrupted_run(doc_strategy, tmp_path):
    config = _config(steps=14, warmup=3, checkpoint_every=5, log_every=2,
                     strategy_options={"tau_max": 3.0, "tau_min": 0.2})
    run_search(config, tmp_path / "a", space=planted_space(), task=PlantedTask())
    stopped = run_search(config, tmp_path / "b", space=planted_space(), task=PlantedTask(), stop_at=8)
    assert not stopped.finished
    resumed = run_search(config, tmp_path / "b", task=PlantedTask(), resume=True)
    assert resumed.finished
    (arch_a, state_a), (arch_b, state_b) = _final(tmp_path / "a"), _final(tmp_path / "b")
    assert arch_a.keys() == arch_b.keys()
    for k in arch_a:
        assert torch.equal(arch_a[k], arch_b[k]), k
    assert state_a["tau"] == state_b["tau"] < 3.0
    assert torch.equal(state_a["generator"], state_b["generator"])


def test_options_from_the_command_line(doc_strategy, tmp_path):
    from nasflow.cli.main import app

    space = tmp_path / "planted.yaml"
    planted_space(task=register_task()).to_yaml(space)
    argv = ["search", str(space), "--strategy", NAME, "--steps", "4", "--warmup", "1", "--batch", "2",
            "--quiet", "--strategy-opt", "tau_max=5", "--strategy-opt", "never_derive=conv_1x1"]
    result = CliRunner().invoke(app, [*argv, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["strategy_options"]
    assert stored == {"tau_max": 5, "never_derive": "conv_1x1"}
    bad = CliRunner().invoke(app, [*argv, "--strategy-opt", "tau=1", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "has no option 'tau'" in str(bad.exception or bad.output)
    assert "tau_max" in str(bad.exception or bad.output)  # its options are listed
    assert not (tmp_path / "bad").exists()
