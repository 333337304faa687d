"""The contracts issue's residue (issue 24): what a run records is what runs on every entry
point (the Python API and sweeps, not only `nasflow search`): a GDAS or SPOS run, whose mixed
op computes one candidate at a time, records fuse=False, DARTS' keeps the fused kernels it
runs, and a resume through Python keeps what the run recorded."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from synthetic import LEVERS_SPACE, levers_folder

from nasflow.search.config import SearchConfig
from nasflow.search.loop import run_search
from nasflow.search.sweep import gamma_values, run_sweep

SPOS_SMALL = {"population": 2, "generations": 1, "parents": 1, "bn_batches": 1}  # the toy space has 2 paths
FUSED = [("gdas", False), ("spos", False), ("darts", True)]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return levers_folder(tmp_path, monkeypatch)


def _config(strategy: str, **more: Any) -> SearchConfig:
    return SearchConfig(space="space.yaml", strategy=strategy, steps=2, warmup=1, batch_size=4, device="cpu",
                        snapshot_steps=[], log_every=1,
                        strategy_options=SPOS_SMALL if strategy == "spos" else {}, **more)


def _recorded(run: Path) -> dict[str, Any]:
    return json.loads((run / "config.json").read_text())


@pytest.mark.parametrize("strategy, fused", FUSED)
def test_python_api_records_fuse_as_it_runs(folder: Path, strategy: str, fused: bool) -> None:
    assert _config(strategy).fuse is True  # the default, asked for
    run_search(_config(strategy), folder / "run")
    assert _recorded(folder / "run")["fuse"] is fused


@pytest.mark.parametrize("strategy, fused", FUSED)
def test_sweep_records_fuse_as_it_runs(folder: Path, strategy: str, fused: bool) -> None:
    results = run_sweep(_config(strategy), folder / "sweep", gamma_values([0.0, 0.1]), parallel=1)
    assert [o.error for _, o in results] == [None, None]
    for value, _ in results:
        assert _recorded(folder / "sweep" / value.name)["fuse"] is fused


def test_python_resume_of_an_inert_fuse_keeps_the_record(folder: Path) -> None:
    """The same config resumed (fuse=True asked, False recorded) is no change; a run recorded
    with the inert True before this keeps it when resumed with fuse=False."""
    run_search(_config("gdas"), folder / "run", stop_at=1)
    result = run_search(_config("gdas"), folder / "run", resume=True)
    assert result.finished and _recorded(folder / "run")["fuse"] is False
    old = _recorded(folder / "run")
    (folder / "run" / "config.json").write_text(json.dumps({**old, "fuse": True, "steps": 2}))
    run_search(_config("gdas", fuse=False).model_copy(update={"steps": 3}), folder / "run", resume=True)
    assert _recorded(folder / "run")["fuse"] is True


def test_darts_resume_with_another_fuse_is_still_refused(folder: Path) -> None:
    from nasflow.errors import RunError

    run_search(_config("darts"), folder / "run", stop_at=1)
    with pytest.raises(RunError, match="fuse"):
        run_search(_config("darts", fuse=False), folder / "run", resume=True)


# --- metrics.jsonl: the decision weights are `weights`; runs written before say `softmax` ---
def _old_format(run: Path) -> list[dict[str, Any]]:
    """Rewrites the run's metrics.jsonl as runs recorded it before: the field named softmax."""
    path = run / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert all("weights" in r and "softmax" not in r for r in records)  # as the loop writes now
    old = [{("softmax" if k == "weights" else k): v for k, v in r.items()} for r in records]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    return old


def test_an_old_format_run_plots_and_resumes(folder: Path) -> None:
    from synthetic import PlantedTask, fast_config, planted_space

    from nasflow.viz.run_data import run_history
    from nasflow.viz.run_plots import plot_run

    config = fast_config(steps=12, warmup=2, log_every=2, snapshot_steps=[])
    run_search(config, folder / "run", space=planted_space(), task=PlantedTask(), stop_at=6)
    old = _old_format(folder / "run")
    history = run_history(folder / "run")
    assert history.decisions["m"].steps == [0, 2, 4, 6]
    assert history.decisions["m"].weights == [r["softmax"]["m"] for r in old]
    # Resumed: the end table's start column comes from the old step-0 record; new records say weights.
    result = run_search(config, folder / "run", task=PlantedTask(), resume=True)
    assert result.finished and result.initial_softmax == old[0]["softmax"]
    records = [json.loads(line) for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
    assert ["weights" in r for r in records] == [False] * 4 + [True] * 3
    history = run_history(folder / "run")  # both names, record by record
    assert history.decisions["m"].steps == [0, 2, 4, 6, 8, 10, 12]
    assert history.decisions["m"].weights[-1] == records[-1]["weights"]["m"] == result.softmax["m"]
    assert len(plot_run(folder / "run", svg=False).files) >= 3


def test_tensorboard_reads_an_old_record(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from nasflow.runs.tensorboard import TensorBoardLog

    log = TensorBoardLog(tmp_path, {"m": ["conv_1x1", "conv_3x3"]})
    log.write({"step": 0, "softmax": {"m": [0.25, 0.75]}})
    log.write({"step": 1, "weights": {"m": [0.5, 0.5]}})
    log.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("weights/m/conv_3x3")] == [(0, 0.75), (1, 0.5)]


# --- an unknown key in any preset section names the preset, the key and the valid keys -------
PRESET_TASK = "residue-preset-test"
ARCH = (f"name: fixed\ntask: {PRESET_TASK}\nparams: {{C: 4}}\ninputs: {{x: C, y: C}}\n"
        "nodes:\n  m: {op: conv_1x1, in: x}\n  out: {combine: add, in: [m, y]}\noutput: out\n")
SEARCH_KEYS = "the settings are: space, overrides, task"
ADAM_KEYS = "takes: lr, betas, weight_decay"
TRAIN_KEYS = "the train section takes: lr, weight_decay, gamma, overrides, task"


@pytest.mark.parametrize("command, sections, line", [
    ("search", {"search": {"stpes": 2}}, f"unknown setting 'stpes' (did you mean 'steps'?); {SEARCH_KEYS}"),
    ("search", {"search": {"weights_optim": {"lrr": 1e-3}}},
     f"unknown setting 'weights_optim.lrr' (did you mean 'lr'?); weights_optim {ADAM_KEYS}"),
    ("search", {"search": {"arch_optim": {"beta": [0.5, 0.9]}}},
     f"unknown setting 'arch_optim.beta' (did you mean 'betas'?); arch_optim {ADAM_KEYS}"),
    ("sweep", {"search": {"arch_optim": {"wd": 0}}}, f"unknown setting 'arch_optim.wd'; arch_optim {ADAM_KEYS}"),
    ("train", {"train": {"stpes": 2}}, f"unknown setting 'stpes' (did you mean 'steps'?); {TRAIN_KEYS}"),
    ("train", {"train": {"optim": {"lrr": 1e-3}}}, f"unknown setting 'optim.lrr' (did you mean 'lr'?); optim {ADAM_KEYS}"),
    ("search", {"search": {}, "eval": {"bench": "x"}}, "unknown section 'eval'; a preset's sections are: search, train"),
    ("train", {"serach": {}, "train": {}}, "unknown section 'serach'; a preset's sections are: search, train"),
], ids=["search", "search.weights_optim", "search.arch_optim", "sweep.arch_optim", "train", "train.optim",
        "section eval", "section typo"])
def test_an_unknown_preset_key_names_preset_key_and_valid_keys(folder: Path, command: str, sections: dict[str, Any],
                                                               line: str) -> None:
    from synthetic import PlantedTask
    from typer.testing import CliRunner

    from nasflow.cli.main import app
    from nasflow.errors import NasflowError
    from nasflow.tasks.contract import TASKS, register_task

    register_task(PRESET_TASK)(type("Presets", (PlantedTask,), {"presets": {"paper": sections}}))
    try:
        (folder / "space.yaml").write_text(LEVERS_SPACE.replace("synthetic:PlantedTask", PRESET_TASK))
        (folder / "arch.yaml").write_text(ARCH)
        args = {"search": ["search", "space.yaml", "--levers", "given"], "sweep": ["sweep", "space.yaml", "--gamma", "0,1"],
                "train": ["train", "arch.yaml"]}[command]
        done = CliRunner().invoke(app, [*args, "--preset", "paper", "--device", "cpu", "--out", "out"])
    finally:
        TASKS.remove(PRESET_TASK)
    # a NasflowError: `nasflow` prints it as one line "error: ..." and exits 2 (cli/app.run)
    assert isinstance(done.exception, NasflowError), done.output + repr(done.exception)
    message = str(done.exception)
    assert message.startswith(f"preset 'paper' of task '{PRESET_TASK}': {line}") and "\n" not in message, message
    assert not (folder / "out").exists()


def test_a_partial_train_optim_keeps_the_train_defaults() -> None:
    """As the search's (issue 24 item 5): a preset's {lr} or optim {lr} leaves weight_decay at the
    train config's 0, not AdamConfig's 1e-8."""
    from nasflow.train.config import TrainConfig, preset_changes

    for section in ({"lr": 1e-3}, {"optim": {"lr": 1e-3}}):
        assert TrainConfig.build(preset_changes("p", section)).optim.weight_decay == 0.0
    assert TrainConfig.build({"optim": {"lr": 1e-3}}).optim == TrainConfig().optim.model_copy(update={"lr": 1e-3})


# --- a multi-op derivation names each kept op's node NAME__OP: never another node's name -----
OPS_FOR_NAMES = ("resid-1x1", "resid+1x1", "q__rx", "rx")  # two normalising alike; one with '__'


@pytest.fixture
def name_ops() -> Any:
    import torch.nn as nn

    from nasflow.ops.registry import OPS, register_op

    for name in OPS_FOR_NAMES:
        register_op(name, params=lambda c_in, c_out: c_in * c_out, madds_per_pixel=lambda c_in, c_out: c_in * c_out)(
            lambda c_in, c_out: nn.Conv2d(c_in, c_out, 1, bias=False))
    yield
    for name in OPS_FOR_NAMES:
        OPS.remove(name)


def _kept_nodes(nodes: dict[str, Any], choices: dict[str, Any]) -> dict[str, Any]:
    """Derives a space of `nodes` keeping `choices`, checks every kept op's node inherits its own
    candidate's weights, and returns the derived space's nodes."""
    import torch

    from nasflow.compile.supernet import compile_graph
    from nasflow.derive.genotype import derive_space, inherit_weights
    from nasflow.derive.record import Genotype
    from nasflow.space.graph import build_graph
    from nasflow.space.schema import Space, op

    space = Space(name="names", params={"C": 4}, inputs={"x": 4},
                  nodes={**nodes, "head": op("conv_1x1", list(nodes)[-1], out=3)}, output="head")
    graph = build_graph(space)
    torch.manual_seed(0)
    supernet = compile_graph(graph, mixed_op="plain").state_dict()
    derived = derive_space(space, Genotype(choices=choices))
    dgraph = build_graph(derived)
    weights = inherit_weights(graph, supernet, dgraph, compile_graph(dgraph).state_dict())
    for choice, kept in choices.items():
        parts = derived.nodes[choice].inputs
        assert [derived.nodes[p].op for p in parts] == kept  # one node per kept op, in order
        for part, o in zip(parts, kept):
            assert torch.equal(weights[f"{part}.op.weight"], supernet[f"{choice}.ops.{o}.weight"]), (part, o)
    return dict(derived.nodes)


def test_a_kept_op_name_taken_by_a_users_node_gets_a_suffix(name_ops: None) -> None:
    from nasflow.space.schema import choice, op

    nodes = _kept_nodes({"m__conv_3x3": op("conv_1x1", "x"), "m": choice(["conv_1x1", "conv_3x3"], "m__conv_3x3")},
                        {"m": ["conv_1x1", "conv_3x3"]})
    assert nodes["m"].inputs == ["m__conv_1x1", "m__conv_3x3_2"]
    assert nodes["m__conv_3x3"].op == "conv_1x1" and nodes["m__conv_3x3"].input == "x"  # the user's, untouched


def test_ops_whose_names_normalise_alike_get_distinct_nodes(name_ops: None) -> None:
    from nasflow.space.schema import choice

    nodes = _kept_nodes({"m": choice(["resid-1x1", "resid+1x1", "conv_1x1"], "x")}, {"m": ["resid-1x1", "resid+1x1"]})
    assert nodes["m"].inputs == ["m__resid_1x1", "m__resid_1x1_2"]


def test_kept_names_of_two_choices_cannot_meet(name_ops: None) -> None:
    """Choice a keeping op q__rx and choice a__q keeping rx would both write a__q__rx; an op
    whose name holds '__' still inherits its weights (the name is not parsed back)."""
    from nasflow.space.schema import choice, combine

    nodes = _kept_nodes({"a": choice(["q__rx", "conv_1x1"], "x"), "a__q": choice(["rx", "conv_3x3"], "x"),
                         "s": combine("add", ["a", "a__q"])},
                        {"a": ["q__rx", "conv_1x1"], "a__q": ["rx", "conv_3x3"]})
    assert nodes["a"].inputs == ["a__q__rx", "a__conv_1x1"]
    assert nodes["a__q"].inputs == ["a__q__rx_2", "a__q__conv_3x3"]
