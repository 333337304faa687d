"""Run directories: exact resume (stop_at, Ctrl-C, a killed run), refusing a resume that
would change the search, atomic checkpoints, derive from a run, and the CLI end to end."""
from __future__ import annotations

import json
import os
import random
import signal

import numpy as np
import pytest
import torch
from synthetic import PlantedTask, fast_config, planted_space, register_task
from typer.testing import CliRunner

from nasflow.runs import checkpoint
from nasflow.runs.checkpoint import flatten_state, load_checkpoint, save_checkpoint, unflatten_state
from nasflow.derive.genotype import Genotype
from nasflow.search.derive_run import derive_from_arch, derive_run
from nasflow.errors import RunError
from nasflow.space.graph import build_graph
from nasflow.search.run_dir import RunDir
from nasflow.search.loop import run_search
from nasflow.space.schema import Space

runner = CliRunner()


def _state(run_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(RunDir(run_dir).checkpoint_path)[0]


def _assert_same_state(a, b) -> None:
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.parametrize("stateful", [True, False], ids=["data-state", "data-replay"])
@pytest.mark.parametrize("strategy", ["darts", "milenas"])
def test_stopped_and_resumed_equals_uninterrupted(tmp_path, strategy, stateful):
    config = fast_config(strategy=strategy, steps=40, warmup=10, gamma=0.1, checkpoint_every=7)
    task = lambda: PlantedTask(stateful=stateful)  # noqa: E731  (a fresh task: a new process)
    straight = run_search(config, tmp_path / "a", space=planted_space(), task=task())
    stopped = run_search(config, tmp_path / "b", space=planted_space(), task=task(), stop_at=17)
    assert not stopped.finished and stopped.step == 17
    resumed = run_search(config, tmp_path / "b", task=task(), resume=True)
    assert resumed.finished and resumed.step == 40
    _assert_same_state(_state(tmp_path / "a"), _state(tmp_path / "b"))
    a, b = RunDir(tmp_path / "a").read_metrics(), RunDir(tmp_path / "b").read_metrics()
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for label in a[-1]["weights"]:
        assert a[-1]["weights"][label] == pytest.approx(b[-1]["weights"][label], rel=1e-5)
    assert resumed.genotype == straight.genotype


class _CtrlC:
    """A reporter that presses Ctrl-C at one step."""

    def __init__(self, at: int) -> None:
        self.at = at

    def start(self, step: int, total: int, warmup: int) -> None: ...

    def update(self, step: int, logs, genotype) -> None:
        if step == self.at:
            os.kill(os.getpid(), signal.SIGINT)

    def stop(self) -> None: ...


def test_ctrl_c_saves_and_resume_continues_exactly(tmp_path):
    config = fast_config(steps=30, warmup=5, checkpoint_every=100)
    run_search(config, tmp_path / "a", space=planted_space(), task=PlantedTask())
    before = signal.getsignal(signal.SIGINT)
    stopped = run_search(config, tmp_path / "b", space=planted_space(), task=PlantedTask(), reporter=_CtrlC(12))
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    assert not stopped.finished and stopped.step == 12
    assert json.loads(RunDir(tmp_path / "b").metrics_path.read_text().splitlines()[-1])["step"] == 10
    run_search(config, tmp_path / "b", task=PlantedTask(), resume=True)
    _assert_same_state(_state(tmp_path / "a"), _state(tmp_path / "b"))


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    config = fast_config(steps=30, warmup=5, checkpoint_every=10, log_every=5)
    run_search(config, tmp_path / "a", space=planted_space(), task=PlantedTask())
    run_search(config, tmp_path / "b", space=planted_space(), task=PlantedTask(), stop_at=20)
    run = RunDir(tmp_path / "b")
    # As if killed at step 24: records past the checkpoint at 20 exist, the checkpoint does not.
    run.append_metrics({"step": 25, "losses": {}})
    run_search(config, tmp_path / "b", task=PlantedTask(), resume=True)
    assert [r["step"] for r in run.read_metrics()] == [0, 5, 10, 15, 20, 25, 30]
    _assert_same_state(_state(tmp_path / "a"), _state(tmp_path / "b"))


def test_resume_refuses_a_config_that_changes_the_search(tmp_path):
    config = fast_config(steps=10, warmup=2)
    run_search(config, tmp_path / "run", space=planted_space(), task=PlantedTask())
    with pytest.raises(RunError, match=r"config differs \(lambda: run 1.0, now 0.5; seed: run 0, now 3\)"):
        run_search(config.model_copy(update={"lam": 0.5, "seed": 3}), tmp_path / "run", task=PlantedTask(), resume=True)
    other = planted_space(channels=2)
    with pytest.raises(RunError, match="space 'planted' differs from the run's space.yaml"):
        run_search(config, tmp_path / "run", space=other, task=PlantedTask(), resume=True)
    longer = run_search(config.model_copy(update={"steps": 15}), tmp_path / "run", task=PlantedTask(), resume=True)
    assert longer.step == 15 and RunDir(tmp_path / "run").config().steps == 15


def test_run_directory_errors(tmp_path):
    config = fast_config(steps=2, warmup=1)
    with pytest.raises(RunError, match="run directory '.*nothing' does not exist"):
        run_search(config, tmp_path / "nothing", task=PlantedTask(), resume=True)
    run_search(config, tmp_path / "run", space=planted_space(), task=PlantedTask())
    with pytest.raises(RunError, match="already holds a run; pass --resume"):
        run_search(config, tmp_path / "run", space=planted_space(), task=PlantedTask())
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="is not a search run: it has no config.json"):
        RunDir.open(tmp_path / "empty")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, {"a": torch.ones(3)}, {"step": 1})

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"a": torch.zeros(3)}, {"step": 2})
    tensors, state = load_checkpoint(path)  # the old one, whole
    assert torch.equal(tensors["a"], torch.ones(3)) and state["step"] == 1
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_a_run_leaves_no_temporary_files(tmp_path):
    run_search(fast_config(steps=12, warmup=2, checkpoint_every=3, snapshot_steps=[6]), tmp_path / "run",
               space=planted_space(), task=PlantedTask())
    names = [p.name for p in (tmp_path / "run").rglob("*")]
    assert not [n for n in names if n.endswith(".tmp")]
    assert {"config.json", "space.yaml", "metrics.jsonl", "checkpoint.safetensors",
            "step_000006.safetensors", "step_000006.genotype.json"} <= set(names)


def test_optimizer_and_rng_state_round_trip():
    p = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.Adam([p], lr=0.1, betas=(0.5, 0.999))
    p.grad = torch.ones(3)
    opt.step()
    state = {"optim": opt.state_dict(), "rng": checkpoint.rng_state()}
    tensors: dict[str, torch.Tensor] = {}
    skeleton = json.loads(json.dumps(flatten_state(state, "s", tensors)))
    back = unflatten_state(skeleton, tensors)
    assert list(back["optim"]["state"]) == [0]  # int keys kept: Adam looks its state up by index
    assert back["optim"]["param_groups"][0]["betas"] == (0.5, 0.999)
    torch.testing.assert_close(back["optim"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    draws = []
    for _ in range(2):
        checkpoint.set_rng_state(back["rng"])
        draws.append((torch.rand(2).tolist(), random.random(), float(np.random.rand())))
    assert draws[0] == draws[1]


# --- derive ------------------------------------------------------------------------------------
def _search(tmp_path, **changes):
    config = fast_config(snapshot_steps=[40], **changes)
    return run_search(config, tmp_path / "run", space=planted_space(), task=PlantedTask())


def test_derive_from_run_is_a_space_without_decisions_with_the_same_genotype(tmp_path):
    result = _search(tmp_path)
    derived = derive_run(tmp_path / "run")
    assert derived.out_dir == tmp_path / "run" / "derived" and derived.step == 100
    space = Space.from_yaml(derived.out_dir / "arch.yaml")
    graph = build_graph(space)
    assert graph.is_derived and not graph.decisions
    assert Genotype.from_json(space.meta["genotype"]) == result.genotype == derived.genotype
    assert Genotype.from_json(json.loads((derived.out_dir / "genotype.json").read_text())) == result.genotype
    assert {"u1", "u3"}.isdisjoint(space.nodes) and set(space.inputs) == {"x", "y"}
    # a space without a task: costs at the base task's cost size (one position); a size given is used
    assert derived.params > 0 and derived.madds > 0 and derived.output_size == (1, 1)
    sized = derive_run(tmp_path / "run", out=tmp_path / "sized", size=(720, 1280))
    assert sized.output_size == (720, 1280) and sized.madds == derived.madds * 720 * 1280


def test_derive_from_snapshot_topk_and_arch_file(tmp_path):
    _search(tmp_path)
    snap = derive_run(tmp_path / "run", step=40, topk=1)
    assert snap.out_dir == tmp_path / "run" / "derived_step_40" and snap.step == 40
    assert len(snap.genotype.edges["e"]) == 1
    with pytest.raises(RunError, match="no snapshot at step 41 \\(snapshots: 40\\)"):
        derive_run(tmp_path / "run", step=41)
    planted = tmp_path / "planted.yaml"
    planted_space().to_yaml(planted)
    again = derive_from_arch(planted, tmp_path / "run" / "snapshots" / "step_000040.safetensors",
                             out=tmp_path / "d", topk=1)
    assert again.genotype == snap.genotype and (tmp_path / "d" / "arch.yaml").is_file()


# --- CLI end to end -------------------------------------------------------------------------
def test_cli_search_resume_and_derive(tmp_path):
    from nasflow.cli.main import app

    name = register_task()
    space = tmp_path / "planted.yaml"
    planted_space(task=name).to_yaml(space)
    run_dir = tmp_path / "run"
    args = ["search", str(space), "--strategy", "milenas", "--steps", "60", "--warmup", "10", "--batch", "8",
            "--lr", "1e-2", "--arch-lr", "3e-2", "--gamma", "0", "--seed", "1", "--out", str(run_dir),
            "--snapshot-steps", "30", "--task-opt", "size=8", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "genotype at step 60" in result.output and "softmax(alpha)" in result.output
    config = RunDir(run_dir).config()
    assert config.steps == 60 and config.task_options == {"size": 8} and config.arch_optim.betas == (0.5, 0.999)
    assert config.weights_schedule == "constant"
    cosine = runner.invoke(app, [*args[:args.index("--out") + 1], str(tmp_path / "cos"), *args[args.index("--out") + 2:],
                                 "--lr-schedule", "cosine", "--steps", "20"])
    assert cosine.exit_code == 0, cosine.output
    assert RunDir(tmp_path / "cos").config().weights_schedule == "cosine"
    more = runner.invoke(app, ["search", "--resume", "--out", str(run_dir), "--steps", "70", "--quiet"])
    assert more.exit_code == 0, more.output
    assert RunDir(run_dir).read_metrics()[-1]["step"] == 70
    derived = runner.invoke(app, ["derive", str(run_dir), "--step", "30", "--size", "64x64"])
    assert derived.exit_code == 0, derived.output
    assert (run_dir / "derived_step_30" / "arch.yaml").is_file() and "Multi-Adds" in derived.output
    genotype = json.loads((run_dir / "derived_step_30" / "genotype.json").read_text())
    assert f"genotype: m={genotype['choices']['m']}" in derived.output


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    from nasflow.cli.app import run

    space = tmp_path / "planted.yaml"
    planted_space(task=register_task()).to_yaml(space)
    cases = [
        (["search", str(space), "--strategy", "milenaz", "--out", str(tmp_path / "r")], "did you mean 'milenas'"),
        (["search", "--resume"], "--resume needs the run directory"),
        (["search", str(space), "--lambda", "-1", "--out", str(tmp_path / "r2")], "lambda"),
        (["derive", str(space)], "pass --arch"),
        (["search", str(space), "--lr-schedule", "cosin", "--out", str(tmp_path / "r3")],
         "--lr-schedule cosin: Input should be 'constant' or 'cosine'"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            run(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and message in err and "Traceback" not in err
