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
