"""The retraining loop on the planted problem: the loss goes down, a stopped and resumed run
ends with the weights of an uninterrupted one, --init-from loads what fits and says what it
skipped, the LR schedule halves where it should, spaces with choices are refused, and the
CLI writes a model directory that load_model reads."""
from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from synthetic import PlantedTask, planted_space, register_task
from typer.testing import CliRunner

from nasflow.runs.checkpoint import load_checkpoint
from nasflow.cli.app import run as cli_run
from nasflow.cli.main import app
from nasflow.runs.config import AdamConfig
from nasflow.derive.genotype import Genotype, derive_space
from nasflow.errors import NasflowError, RunError
from nasflow.space.graph import build_graph
from nasflow.runs.modeldir import load_model, save_model
from nasflow.space.schema import Space, op
from nasflow.compile.supernet import compile_graph
from nasflow.train.loop import run_train
from nasflow.train.config import TrainConfig
from nasflow.train.run_dir import TrainRunDir

runner = CliRunner()


def planted_arch(channels: int = 4, task: str | None = None) -> Space:
    """The planted space derived with its planted genotype: an architecture, no choices."""
    geno = Genotype({"m": "conv_5x5"}, {"e": ["u2", "u4"]})
    return derive_space(planted_space(channels, task=task), geno, name="planted-arch")


def fast(**changes) -> TrainConfig:
    base = dict(steps=40, batch_size=8, optim=AdamConfig(lr=1e-2, weight_decay=0.0), lr_halve_every=1000,
                seed=0, device="cpu", validate_every=20, log_every=5, checkpoint_every=10)
    return TrainConfig(**{**base, **changes})


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(TrainRunDir(run_dir).checkpoint_path)[0]


def test_loss_goes_down_and_the_run_leaves_models(tmp_path):
    result = run_train(fast(), tmp_path / "run", arch=planted_arch(), task=PlantedTask())
    assert result.finished and result.step == 40
    run = TrainRunDir(tmp_path / "run")
    records = run.read_metrics()
    losses = [r["losses"]["train/loss"] for r in records if "losses" in r]
    assert [r["step"] for r in records if "losses" in r] == list(range(5, 41, 5))
    assert losses[-1] < 0.5 * losses[0], losses
    valid = [r for r in records if "valid" in r]
    assert [r["step"] for r in valid] == [20, 40] and valid[1]["valid"]["mse"] < valid[0]["valid"]["mse"]
    model, space, meta = load_model(result.model_dir)
    assert space.to_data() == planted_arch().to_data()
    assert meta["steps"] == 40 and meta["weights"] == "final" and meta["valid"] == result.valid
    # mse is lower-better: best/ holds the step with the lowest validation mse
    assert result.best is not None and result.best["step"] == 40 and result.best["metric"] == "mse"
    assert load_model(result.best_dir)[2]["best"]["step"] == 40
    trained = _weights(tmp_path / "run")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, trained[f"weights.{k}"])


@pytest.mark.parametrize("stateful", [True, False], ids=["data-state", "data-replay"])
def test_stopped_and_resumed_equals_uninterrupted(tmp_path, stateful):
    config = fast(steps=30, checkpoint_every=7, validate_every=9, lr_halve_every=11)
    task = lambda: PlantedTask(stateful=stateful)  # noqa: E731  (a fresh task: a new process)
    straight = run_train(config, tmp_path / "a", arch=planted_arch(), task=task())
    stopped = run_train(config, tmp_path / "b", arch=planted_arch(), task=task(), stop_at=17)
    assert not stopped.finished and stopped.step == 17 and stopped.model_dir is None
    resumed = run_train(config, tmp_path / "b", task=task(), resume=True)
    assert resumed.finished and resumed.step == 30
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = TrainRunDir(tmp_path / "a").read_metrics(), TrainRunDir(tmp_path / "b").read_metrics()
    assert [r["step"] for r in ra] == [r["step"] for r in rb]
    assert resumed.valid == straight.valid and resumed.best == straight.best


class _CtrlC:
    """A reporter that presses Ctrl-C at one step."""

    def __init__(self, at: int) -> None:
        self.at = at

    def start(self, step: int, total: int) -> None: ...

    def update(self, step: int, logs, valid) -> None:
        if step == self.at:
            os.kill(os.getpid(), signal.SIGINT)

    def stop(self) -> None: ...


def test_ctrl_c_saves_and_resume_continues_exactly(tmp_path):
    config = fast(steps=20, checkpoint_every=100)
    run_train(config, tmp_path / "a", arch=planted_arch(), task=PlantedTask())
    before = signal.getsignal(signal.SIGINT)
    stopped = run_train(config, tmp_path / "b", arch=planted_arch(), task=PlantedTask(), reporter=_CtrlC(12))
    assert signal.getsignal(signal.SIGINT) is before and not stopped.finished and stopped.step == 12
    run_train(config, tmp_path / "b", task=PlantedTask(), resume=True)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_lr_schedule_halves_every_n_steps(tmp_path):
    config = fast(steps=12, lr_halve_every=4, log_every=1, optim=AdamConfig(lr=8e-3, weight_decay=0.0))
    run_train(config, tmp_path / "run", arch=planted_arch(), task=PlantedTask())
    lrs = {r["step"]: r["lr"] for r in TrainRunDir(tmp_path / "run").read_metrics() if "lr" in r}
    # the lr logged after step s is the one step s + 1 uses: 8e-3 for steps 1-4, then 4e-3 ...
    assert [lrs[s] for s in range(1, 13)] == [8e-3] * 3 + [4e-3] * 4 + [2e-3] * 4 + [1e-3]
    assert [config.lr_at(s) for s in (0, 3, 4, 8, 12)] == [8e-3, 8e-3, 4e-3, 2e-3, 1e-3]


def test_init_from_loads_matching_tensors_and_reports_the_rest(tmp_path):
    source = planted_arch(channels=4)
    torch.manual_seed(5)
    src_model = compile_graph(build_graph(source))
    save_model(tmp_path / "src", source, src_model.state_dict())
    # same names, but the dense edge's conv reads 2 x 4 channels and writes 4: give the
    # target a wider output op so exactly that tensor differs in shape
    target = planted_arch(channels=4).model_copy(deep=True)
    nodes = dict(target.nodes)
    nodes["head"] = op("conv_3x3", "out", out=6)
    target = target.model_copy(update={"nodes": nodes, "output": "head"})
    result = run_train(fast(steps=1, init_from=str(tmp_path / "src"), optim=AdamConfig(lr=1e-12)),
                       tmp_path / "run", arch=target, task=_HeadTask())
    init = result.init
    assert init is not None and set(init.loaded) == set(src_model.state_dict())
    assert init.skipped == {} and init.fresh == ["head.op.weight"]
    trained = _weights(tmp_path / "run")
    for k, v in src_model.state_dict().items():  # lr 1e-12: one step leaves them where they were
        torch.testing.assert_close(trained[f"weights.{k}"], v, rtol=0, atol=1e-9)

    # the other way round: head.op.weight is in the source but not the target, so it is skipped
    save_model(tmp_path / "wide", target, compile_graph(build_graph(target)).state_dict())
    back = run_train(fast(steps=1, init_from=str(tmp_path / "wide")), tmp_path / "back",
                     arch=planted_arch(), task=PlantedTask())
    assert back.init is not None and back.init.skipped == {"head.op.weight": "not in this architecture"}


def test_init_from_reports_shape_mismatches_and_refuses_a_foreign_model(tmp_path):
    small, big = planted_arch(channels=2), planted_arch(channels=4)
    save_model(tmp_path / "small", small, compile_graph(build_graph(small)).state_dict())
    with pytest.raises(NasflowError, match="no tensor of model 'planted-arch' matches this architecture"):
        run_train(fast(steps=1, init_from=str(tmp_path / "small")), tmp_path / "run", arch=big, task=PlantedTask())
    assert not (tmp_path / "run").exists()  # nothing written for a run that could not start
    from nasflow.train.warmstart import warm_start

    model = compile_graph(build_graph(big))
    partial = Space(name="other", inputs={"x": 4}, nodes={"m": op("conv_5x5", "x", out=4),
                                                          "e": op("conv_1x1", "m", out=3)}, output="e")
    save_model(tmp_path / "partial", partial, compile_graph(build_graph(partial)).state_dict())
    report = warm_start(model, tmp_path / "partial")
    assert report.loaded == ["m.op.weight"]
    assert report.skipped == {"e.op.weight": "shape (3, 4, 1, 1), this architecture has (4, 8, 1, 1)"}


def test_a_space_with_choices_is_refused(tmp_path):
    with pytest.raises(NasflowError, match=r"still has choices \(m, e\).*derive it first with `nasflow derive"):
        run_train(fast(), tmp_path / "run", arch=planted_space(), task=PlantedTask())
    assert not (tmp_path / "run").exists()


def test_resume_refuses_a_config_that_changes_the_training(tmp_path):
    config = fast(steps=5)
    run_train(config, tmp_path / "run", arch=planted_arch(), task=PlantedTask())
    with pytest.raises(RunError, match=r"config differs \(batch_size: run 8, now 4; seed: run 0, now 3\)"):
        run_train(config.model_copy(update={"batch_size": 4, "seed": 3}), tmp_path / "run",
                  task=PlantedTask(), resume=True)
    with pytest.raises(RunError, match="already holds a run; pass --resume"):
        run_train(config, tmp_path / "run", arch=planted_arch(), task=PlantedTask())
    longer = run_train(config.model_copy(update={"steps": 8}), tmp_path / "run", task=PlantedTask(), resume=True)
    assert longer.finished and longer.step == 8 and load_model(longer.model_dir)[2]["steps"] == 8


def test_scale_needs_an_arch_with_a_scale_param(tmp_path):
    with pytest.raises(NasflowError, match="--scale: architecture 'planted-arch' has no `scale` param"):
        run_train(fast(overrides={"scale": 3}), tmp_path / "run", arch=planted_arch(), task=PlantedTask())


def test_cli_train_writes_a_model_directory(tmp_path, capsys):
    name = register_task()
    arch_file = tmp_path / "arch.yaml"
    planted_arch(task=name).to_yaml(arch_file)
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", str(arch_file), "--steps", "6", "--batch", "4", "--lr", "1e-3",
                              "--out", str(out), "--device", "cpu", "--quiet", "--set", "C=4"])
    assert res.exit_code == 0, res.output
    assert "model directory" in res.output and str(out / "model") in res.output.replace("\n", "")
    model, space, meta = load_model(out / "model")
    assert space.name == "planted-arch" and meta["steps"] == 6 and "mse" in meta["valid"]
    config = json.loads((out / "config.json").read_text())
    assert config["steps"] == 6 and config["optim"]["lr"] == 1e-3 and config["batch_size"] == 4
    # resume with more steps continues the same run
    res = runner.invoke(app, ["train", "--resume", "--out", str(out), "--steps", "8", "--quiet"])
    assert res.exit_code == 0, res.output
    assert load_model(out / "model")[2]["steps"] == 8
    # a space with choices: one clear error, exit 2, no traceback
    space_file = tmp_path / "space.yaml"
    planted_space(task=name).to_yaml(space_file)
    with pytest.raises(SystemExit) as exit_:
        cli_run(["train", str(space_file), "--out", str(tmp_path / "bad"), "--quiet"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "derive it first" in err and "Traceback" not in err


class _HeadTask(PlantedTask):
    """PlantedTask for an architecture whose extra head maps 4 channels to 6."""

    def loss(self, model, batch):
        inputs, target = batch
        loss = torch.nn.functional.mse_loss(model(**inputs)[:, :4], target)
        return loss, {"mse": float(loss.detach())}

    def evaluate(self, model):
        return {"mse": 0.0}


def test_preset_train_sections_map_onto_the_config():
    from nasflow.train.config import preset_changes

    config = TrainConfig.build(preset_changes("p", {"steps": 5, "lr": 1e-3, "gamma": 0.0, "validate_every": 2,
                                                    "task_options": {"patch": 8}}))
    assert (config.steps, config.optim.lr, config.validate_every, config.task_options) == (5, 1e-3, 2, {"patch": 8})
    with pytest.raises(NasflowError, match="preset 'p': train.gamma is 0.2, but retraining has no cost regularizer"):
        preset_changes("p", {"gamma": 0.2})
    with pytest.raises(NasflowError, match=r"preset 'p': unknown setting 'stepz' \(did you mean 'steps'\?\); "
                                           r"the train section takes: lr, "):
        preset_changes("p", {"stepz": 5})
    with pytest.raises(NasflowError, match="train config: batch_size: Input should be greater than or equal to 1"):
        TrainConfig.build({"batch_size": 0})


def test_resume_does_not_need_the_init_from_model_again(tmp_path):
    src = planted_arch()
    save_model(tmp_path / "src", src, compile_graph(build_graph(src)).state_dict())
    config = fast(steps=6, init_from=str(tmp_path / "src"))
    run_train(config, tmp_path / "run", arch=planted_arch(), task=PlantedTask(), stop_at=3)
    for f in (tmp_path / "src").iterdir():  # the source model is gone: the checkpoint has the weights
        f.unlink()
    resumed = run_train(config, tmp_path / "run", task=PlantedTask(), resume=True)
    assert resumed.finished and resumed.init is None
    meta = load_model(resumed.model_dir)[2]
    assert meta["init_from"]["source"] == str(tmp_path / "src") and meta["init_from"]["fresh"] == []
