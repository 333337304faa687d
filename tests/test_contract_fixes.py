"""Issue 24 items 5, 6, 7 and 9: preset sections merge into the defaults and an unknown key
names the valid ones; the levers printed and recorded are those that run; the end-of-search
table shows the strategy's own decision weights; `nasflow eval` refuses unknown options."""
from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from nasflow.errors import NasflowError
from nasflow.search.config import SearchConfig
from nasflow.tasks.contract import Task
from nasflow.tasks.presets import apply_preset


# --- 5. presets ------------------------------------------------------------------------------
def test_a_partial_optimizer_section_merges_into_the_defaults():
    preset: dict[str, Any] = {"arch_optim": {"lr": 1e-3}, "weights_optim": {"weight_decay": 0.0}}
    config = SearchConfig.build(apply_preset(preset, {"steps": 10, "warmup": 0}))
    assert config.arch_optim.lr == 1e-3
    assert config.arch_optim.betas == (0.5, 0.999)  # the search's default, not AdamConfig's (0.9, 0.999)
    assert config.weights_optim.lr == SearchConfig().weights_optim.lr and config.weights_optim.weight_decay == 0.0


def test_an_unknown_preset_key_names_the_valid_ones():
    with pytest.raises(NasflowError, match=r"unknown setting 'weight_optim' \(did you mean 'weights_optim'\?\); "
                                           r"the settings are: .*arch_optim"):
        SearchConfig.build(apply_preset({"weight_optim": {"lr": 1e-3}}, {}))
    with pytest.raises(NasflowError, match=r"unknown setting 'arch_optim.beta' .*arch_optim takes: lr, betas, weight_decay"):
        SearchConfig.build({"arch_optim": {"beta": [0.5, 0.9]}})


# --- 9. eval options ---------------------------------------------------------------------------
class _Plain(BaseModel):  # pydantic's default: extra keys ignored
    bench: str = "default"


class _OpenTask(Task):
    name = "open-options"
    eval_options = _Plain


def test_eval_refuses_an_option_the_tasks_model_does_not_declare():
    assert _OpenTask.parse_eval_options({"bench": "x"}).bench == "x"
    with pytest.raises(NasflowError, match=r"task 'open-options' evaluation options: unknown option --bnech "
                                           r"\(its options: --bench\)"):
        _OpenTask.parse_eval_options({"bnech": "x"})


# --- 7. the strategy's own decision weights ----------------------------------------------------
def test_the_end_table_and_the_log_show_a_sigmoid_relaxations_weights(tmp_path):
    import json

    import torch
    from synthetic import PlantedTask, fast_config, planted_space

    from nasflow.compile.relaxation import Relaxation
    from nasflow.search.loop import run_search
    from nasflow.strategies import STRATEGIES, Darts, register_strategy

    class Sigmoid(Relaxation):
        weights_name = "sigmoid"

        def __call__(self, arch: Any) -> dict[str, torch.Tensor]:
            return {label: torch.sigmoid(arch.logits(label)) for label in arch.decisions}

        decision_weights = __call__

    name = "sigmoid-test-strategy"

    @register_strategy(name)
    class SigmoidDarts(Darts):
        def relaxation(self) -> Relaxation:
            return Sigmoid()

    try:
        config = fast_config(strategy=name, steps=4, warmup=1, log_every=2, checkpoint_every=4)
        result = run_search(config, tmp_path / "run", space=planted_space(), task=PlantedTask())
    finally:
        STRATEGIES.remove(name)
    from nasflow.search.run_dir import RunDir, arch_logits
    from nasflow.space.graph import build_graph

    arch, _ = RunDir(tmp_path / "run").load_arch()
    logits = arch_logits(build_graph(planted_space()), arch)
    assert result.weights_name == "sigmoid"
    assert result.softmax.keys() == logits.keys()
    for label, row in logits.items():  # sigmoid(alpha), not softmax(alpha)
        assert result.softmax[label] == pytest.approx(torch.sigmoid(row).tolist(), abs=1e-6)
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["weights"] == result.softmax
    from nasflow.cli.search_view import softmax_table

    assert softmax_table(result).title == "sigmoid(alpha) and sigmoid(beta): start -> end"


# --- 6. the levers printed and recorded are those that run -------------------------------------
@pytest.mark.parametrize("strategy, fused", [("gdas", False), ("darts", True)])
def test_levers_auto_records_fuse_as_the_strategy_runs_it(tmp_path, monkeypatch, strategy, fused):
    import json
    import sys
    from pathlib import Path

    from typer.testing import CliRunner

    from nasflow.cli.main import app

    monkeypatch.setattr(sys, "path", [*sys.path, str(Path(__file__).resolve().parent)])
    monkeypatch.setenv("NASFLOW_CACHE", str(tmp_path / "cache"))  # no cached choice from elsewhere
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(
        "name: levers\ntask: synthetic:PlantedTask\nparams: {C: 4}\ninputs: {x: C, y: C}\n"
        "nodes:\n  m: {choice: [conv_1x1, conv_3x3], in: x}\n  out: {combine: add, in: [m, y]}\noutput: out\n")
    done = CliRunner().invoke(app, ["search", "space.yaml", "--strategy", strategy, "--steps", "3", "--warmup", "1",
                                    "--out", "run", "--batch", "4", "--device", "cpu", "--snapshot-steps", "none",
                                    "--levers", "auto"])
    assert done.exit_code == 0, done.output + repr(done.exception)
    assert f"levers auto (short run): fuse={fused}" in done.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["fuse"] is fused


# --- 10. every preset key is on the page a task author reads ---------------------------------
def test_writing_a_task_names_every_search_preset_key():
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "writing-a-task.md").read_text()
    (bullet,) = re.findall(r"^- \*\*Presets\*\*.*?(?=^- \*\*)", page, flags=re.S | re.M)
    missing = [f.alias or n for n, f in SearchConfig.model_fields.items() if f"`{f.alias or n}`" not in bullet]
    assert not missing, f"docs/writing-a-task.md's Presets bullet does not name {missing}"
