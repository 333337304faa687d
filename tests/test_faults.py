"""Fault injection (issue 25): a disk that fills at each file a search or a training writes,
and folders that are read-only, injected by hooks (tests/faults_util.py). A failed write is
one line naming the path and the fix (no traceback) and loses nothing: after space returns,
the run resumes and ends bit for bit as an uninterrupted one. SIGKILL at seeded points, and
non-finite losses and arch, too. Populations (sweep, train of several runs, derive --budget):
tests/test_faults_populations.py.
"""
from __future__ import annotations

import errno
import json
import os
import random
import signal
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from strategy_checks import final_state
from faults_util import DiskFull, cli, disk_full, one_line, read_only
from synthetic import PlantedTask, fast_config, planted_space, same_run

import nasflow.runs.checkpoint as checkpoint
import nasflow.runs.durable as durable
from nasflow.errors import NasflowWarning
from nasflow.runs.durable import explain_os_error
from nasflow.search.loop import run_search

REPO = Path(__file__).resolve().parents[1]


def _config() -> Any:
    return fast_config(steps=8, warmup=2, checkpoint_every=3, log_every=2)


def test_disk_full_at_every_atomic_write_then_resume_is_exact(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    counter = DiskFull(monkeypatch)
    run_search(_config(), tmp_path / "ref", space=planted_space(), task=PlantedTask())
    writes = counter.calls
    assert writes >= 4  # config, space, checkpoints at 3, 6 and 8, ...
    ref, _ = final_state(tmp_path / "ref")
    for k in range(1, writes + 1):
        run = tmp_path / f"full{k}"
        DiskFull(monkeypatch, fail_at=k)
        with pytest.raises(OSError) as failed:
            run_search(_config(), run, space=planted_space(), task=PlantedTask())
        line = explain_os_error(failed.value)
        assert line is not None and "no space left" in line, (k, failed.value)
        # what it says to do: resume a run made (config.json written), else the same command again
        assert (f"--resume --out {run}" if (run / "config.json").is_file() else "run the command again") in line, line
        assert not list(run.glob(".*.tmp")), k  # no partial file left behind
        DiskFull(monkeypatch)  # space returns
        if (run / "config.json").is_file():  # what the one line says: run it again with --resume
            assert run_search(_config(), run, task=PlantedTask(), resume=True).finished
        else:  # it failed making the run (nothing is left of it): the same command again
            assert run_search(_config(), run, space=planted_space(), task=PlantedTask()).finished
        got, _ = final_state(run)
        assert got.keys() == ref.keys()
        for name in ref:
            assert torch.equal(got[name], ref[name]), (k, name)


# --- read-only folders ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A search of the built-in planted task stopped at step 4 of 8, its space file beside it."""
    from synthetic import register_task

    folder = tmp_path_factory.mktemp("ro")
    name = register_task()
    (folder / "space.yaml").write_text(planted_space(task=name).to_yaml())
    run_search(_config(), folder / "run", space=planted_space(task=name), task=PlantedTask(), stop_at=4)
    return folder / "run"



def _files(folder: Path, keep: str = "") -> list[tuple[str, int]]:
    """The files below `folder` (not folders: a full disk still makes them) and their mtimes,
    but for empty ones named `keep`."""
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*")
                  if p.is_file() and not (p.name == keep and p.stat().st_size == 0))


# What each fault's line must say: why, and a fix.
FAULTS = {"read-only": (read_only, ("read-only",), "writable"),
          "disk full": (disk_full, ("no space left", "are free"), "free some space")}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("command,written", [
    (["search", "--resume", "--out", "{run}", "-q"], "{run}/"),
    (["derive", "{run}"], "{run}/derived"),
])
def test_commands_on_a_read_only_or_full_run_directory(stopped_run: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str], command: list[str],
                                                       written: str, fault: str) -> None:
    before = _files(stopped_run)
    hook, why, fix = FAULTS[fault]
    hook(monkeypatch, stopped_run)
    code, err = cli([c.format(run=stopped_run) for c in command], capsys)
    one_line(code, err, written.format(run=stopped_run), why[0], fix)
    assert _files(stopped_run) == before


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_plot_on_a_read_only_or_full_run_directory(stopped_run: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str], fault: str) -> None:
    pytest.importorskip("matplotlib")
    hook, why, fix = FAULTS[fault]
    hook(monkeypatch, stopped_run)
    code, err = cli(["plot", str(stopped_run)], capsys)
    one_line(code, err, str(stopped_run), why[0], fix)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_upscale_into_a_read_only_or_full_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], fault: str) -> None:
    from nasflow.compile.supernet import compile_graph
    from nasflow.runs.modeldir import save_model
    from nasflow.space.graph import build_graph
    from nasflow.space.load import load_space

    space = load_space(REPO / "spaces" / "dlsr" / "dlsr-s.yaml", {"channels": 4})
    model = save_model(tmp_path / "m", space, compile_graph(build_graph(space)).state_dict(), {"scale": 2})
    Image.fromarray(np.full((20, 20, 3), 9, np.uint8)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    hook, why, fix = FAULTS[fault]
    hook(monkeypatch, out)
    for dst in (out / "a2.png", out / "sub" / "a2.png"):
        code, err = cli(["upscale", str(model), str(tmp_path / "a.png"), "-o", str(dst), "--backend", "eager"],
                        capsys)
        one_line(code, err, str(out), why[0], fix)
    assert _files(out) == []


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, stopped_run: Path) -> dict[str, str]:
    """What the writing commands read: the planted space, its stopped run and an architecture
    derived from it (its task registered in this process) with a model of it as if retrained,
    a tiny DLSR-S model, an image and a folder of them."""
    from nasflow.compile.supernet import compile_graph
    from nasflow.runs.modeldir import save_model
    from nasflow.search.derive_run import derive_run
    from nasflow.space.graph import build_graph
    from nasflow.space.load import load_space

    folder = tmp_path_factory.mktemp("inputs")
    arch = derive_run(stopped_run, out=folder / "derived").out_dir / "arch.yaml"
    space = load_space(REPO / "spaces" / "dlsr" / "dlsr-s.yaml", {"channels": 4})
    torch.manual_seed(0)
    model = save_model(folder / "m", space, compile_graph(build_graph(space)).state_dict(), {"scale": 2})
    arch_space = load_space(arch)
    retrained = save_model(folder / "retrained", arch_space, compile_graph(build_graph(arch_space)).state_dict(),
                           {"valid": {"mse": 0.5}})
    (folder / "images").mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(
            folder / "images" / f"{i}.png")
    return {"space": str(stopped_run.parent / "space.yaml"), "arch": str(arch), "model": str(model),
            "run": str(stopped_run), "retrained": str(retrained), "image": str(folder / "images" / "0.png"), "images": str(folder / "images"),
            "dlsr": str(REPO / "spaces" / "dlsr" / "dlsr-s.yaml")}


SMALL = ["--steps", "4", "--warmup", "1", "--batch", "8", "--device", "cpu", "-q"]
# Every command that writes (search --resume, derive, plot and upscale are tested above), its
# output under {out}: each must end with one line naming that path when it cannot write there.
WRITERS = {
    "search": ["search", "{space}", *SMALL, "--levers", "given", "--out", "{out}/run"],
    "sweep": ["sweep", "{space}", "--gamma", "0,1", *SMALL, "--parallel", "1", "--out", "{out}/sweep"],
    "train": ["train", "{arch}", "--steps", "2", "--batch", "8", "--device", "cpu", "-q", "--out", "{out}/train"],
    "export": ["export", "{model}", "--onnx", "{out}/m.onnx"],
    "profile": ["profile", "{dlsr}", "--set", "channels=4", "--size", "64x64", "--reps", "1", "--warmup", "0",
                "--calibrate", "0", "-o", "{out}/table.json"],
    "prepare-data": ["prepare-data", "{images}", "--scale", "2", "--cache", "{out}/store", "--workers", "1"],
    "draw": ["draw", "{dlsr}", "--layout", "nasflow", "-o", "{out}/space.svg"],
    "compare": ["compare", "{model}", "--image", "{image}", "--box", "4,4,16,16", "-o", "{out}/cmp.png"],
    "derive": ["derive", "{run}", "--out", "{out}/derived"],
    "upscale": ["upscale", "{model}", "{image}", "-o", "{out}/up.png", "--backend", "eager"],
    "search --seeds": ["search", "{space}", "--seeds", "0,1", *SMALL, "--parallel", "1", "--out", "{out}/seeds"],
    "report --pareto": ["report", "{run}", "--models", "{retrained}", "--pareto", "{out}/pareto.png"],
    "import": ["import", "{released}", "-o", "{out}/imported"],
    # the exported model cached in NASFLOW_CACHE={out}/cache, the image written elsewhere
    "upscale (ONNX cache)": ["upscale", "{model}", "{image}", "-o", "{elsewhere}/up.png", "--backend", "onnx"],
}
NEEDS_MATPLOTLIB = ("draw", "compare", "report --pareto")
RELEASED = REPO.parent / "shared" / "weights" / "dlsr" / "RFDN_beta21_ps128_20210128_1000.pt"


@pytest.mark.parametrize("fault", ["read-only", "disk full"])
@pytest.mark.parametrize("command", sorted(WRITERS))
def test_every_writing_command_says_in_one_line_what_it_could_not_write(
        inputs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], command: str, fault: str) -> None:
    if command in NEEDS_MATPLOTLIB:
        pytest.importorskip("matplotlib")
    if command == "import" and not RELEASED.is_file():
        pytest.skip(f"needs the released DLSR weights ({RELEASED})")
    if command == "upscale (ONNX cache)":
        pytest.importorskip("onnxruntime")
        monkeypatch.setenv("NASFLOW_CACHE", str(tmp_path / "out" / "cache"))
    out = tmp_path / "out"
    out.mkdir()
    hook, why, fix = FAULTS[fault]
    hook(monkeypatch, out)
    code, err = cli([a.format(out=out, released=RELEASED, elsewhere=tmp_path, **inputs) for a in WRITERS[command]],
                    capsys)
    # the path, why and the fix (a sweep's or --seeds' line joins its searches' errors and says the fix once)
    one_line(code, err, str(out), fix[1:])  # 'ree some space' also in 'Free some space, then ...'
    assert any(w in err.lower() for w in why), err
    # nothing half-written (a full disk still makes folders; the store keeps its empty lock file by design)
    assert _files(out, keep=".prepare.lock") == []
    if fault == "read-only":
        assert list(out.iterdir()) == []


def test_disk_full_in_a_checkpoint_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(b"x" * 3000)  # the last checkpoint: its size is what the next one needs
    (tmp_path / "config.json").write_text("{}")  # a run's folder: the line says how to resume it
    line = explain_os_error(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".checkpoint.safetensors.tmp")))
    assert line is not None
    assert f"writing '{path}'" in line and "the last one took 2.9 KB" in line and f"--resume --out {tmp_path}" in line
    # a file outside a run (an export, a figure): the same command again, no --resume
    other = explain_os_error(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "derived" / "arch.yaml")))
    assert other is not None and "run the command again" in other and "--resume" not in other
    assert explain_os_error(OSError(errno.ENOENT, "No such file", str(path))) is None  # not ours to explain
    # a write, flush or close on a full disk names no file: still one line with the fix
    nameless = explain_os_error(OSError(errno.ENOSPC, "No space left on device"))
    assert nameless is not None and "--debug shows which" in nameless and "free some space" in nameless
    assert explain_os_error(OSError(errno.EACCES, "Permission denied", str(path))).startswith(f"cannot write '{path}'")


# --- NaN ---------------------------------------------------------------------------------
def test_a_search_stops_at_the_first_non_finite_loss_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    from nasflow.errors import RunError
    from nasflow.runs.config import AdamConfig

    class Exploding(PlantedTask):
        """The loss and its logs turn NaN from its 6th call on."""
        calls = 0

        def loss(self, *args: Any, **kwargs: Any) -> Any:
            loss, logs = super().loss(*args, **kwargs)
            Exploding.calls += 1
            if Exploding.calls >= 6:
                loss = loss * float("nan")
                logs = {k: float("nan") for k in logs}
            return loss, logs

    config = fast_config(steps=8, warmup=2, checkpoint_every=1, log_every=1, weights_optim=AdamConfig(lr=1e-2))
    with pytest.raises(RunError, match=r"step \d+: .*= nan.*not finite; the run stopped there: its last checkpoint "
                                       r"\(step \d+\) is kept"):
        run_search(config, tmp_path / "r", space=planted_space(), task=Exploding())
    tensors, state = final_state(tmp_path / "r")
    assert state["step"] >= 1 and all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def _poison(path: Path, name: str, value: float) -> None:
    """Write `value` into the first entry of tensor `name` of a checkpoint or snapshot."""
    tensors, state = checkpoint.load_checkpoint(path)
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = value
    checkpoint.save_checkpoint(path, tensors, state)


def test_derive_refuses_arch_parameters_that_are_not_finite(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A diverged search's arch (NaN: argmax picks at random) is one line naming the tensor
    and where finite ones are, and nothing is derived from it."""
    from nasflow.search.run_dir import RunDir

    run = tmp_path / "run"
    run_search(fast_config(steps=6, warmup=1, checkpoint_every=3, log_every=3, snapshot_steps=[2, 4]), run,
               space=planted_space(), task=PlantedTask())
    _poison(run / "checkpoint.safetensors", "arch.alpha.m", float("nan"))
    code, err = cli(["derive", str(run)], capsys)
    one_line(code, err, "at step 6: arch tensor 'arch.alpha.m' holds NaN (1 of 6 values)", "the search diverged",
              "derive the snapshot at step 4, the latest finite one (--step 4)", "re-run the search")
    _poison(RunDir(run).snapshot_path(4), "arch.beta.e", float("-inf"))
    code, err = cli(["derive", str(run)], capsys)
    one_line(code, err, "(--step 2)")
    code, err = cli(["derive", str(run), "--step", "4"], capsys)
    one_line(code, err, "at step 4: arch tensor 'arch.beta.e' holds inf", "(--step 2)")
    assert cli(["derive", str(run), "--step", "2"], capsys)[0] == 0  # the finite snapshot derives
    assert (run / "derived_step_2" / "arch.yaml").is_file()
    _poison(RunDir(run).snapshot_path(2), "arch.alpha.m", float("inf"))
    code, err = cli(["derive", str(run)], capsys)
    one_line(code, err, "resume from an earlier checkpoint")
    assert not (run / "derived").exists() and not (run / "derived_step_4").exists()  # nothing from NaN
    # A space file with an arch file: the same refusal, naming the file.
    (tmp_path / "space.yaml").write_text(planted_space().to_yaml())
    code, err = cli(["derive", str(tmp_path / "space.yaml"), "--arch", str(run / "checkpoint.safetensors")], capsys)
    one_line(code, err, f"'{run / 'checkpoint.safetensors'}': arch tensor 'arch.alpha.m' holds NaN")
    assert not (tmp_path / "run" / "derived").exists()


# --- SIGKILL at seeded points --------------------------------------------------------------
class KillPoints:
    """The points where a run can die, counted in the order it reaches them: a file written to
    its temporary name and not yet moved into place, moved but its folder not yet synced, a
    metrics line appended (at the kill: torn, half of it written), a step computed and not yet
    recorded. With `kill_at` k, the process SIGKILLs itself at the k-th: a real SIGKILL (no
    handler, no cleanup, the kernel drops its lock), at a point chosen by seed, not by timing."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.count, self.kill_at = 0, kill_at

    def point(self) -> bool:
        self.count += 1
        return self.count == self.kill_at

    def install(self, patch: Any) -> None:
        from nasflow.runs.files import RunFiles
        from nasflow.runs.run_loop import RunLoop

        real_fsync_file, real_fsync_dir = durable.fsync_file, durable.fsync_dir
        real_append, real_check = RunFiles.append_metrics, RunLoop.check_finite

        def die() -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        def fsync_file(path: Path) -> None:
            if self.point():
                die()
            real_fsync_file(path)

        def fsync_dir(path: Path) -> None:
            if self.point():
                die()
            real_fsync_dir(path)

        def append_metrics(run: Any, record: dict[str, Any]) -> None:
            if self.point():
                line = json.dumps(record) + "\n"
                with run.metrics_path.open("a") as f:
                    f.write(line[: len(line) // 2])
                die()
            real_append(run, record)

        def check_finite(loop: Any, logs: dict[str, Any]) -> None:
            if self.point():
                die()
            real_check(loop, logs)

        patch(durable, "fsync_file", fsync_file)
        patch(durable, "fsync_dir", fsync_dir)
        patch(RunFiles, "append_metrics", append_metrics)
        patch(RunLoop, "check_finite", check_finite)


def _killed_at(k: int, run: Any) -> None:
    """`run()` in a forked child that SIGKILLs itself at point k; returns once it is dead."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            KillPoints(k).install(setattr)
            run()
            code = 3  # ran to the end: k was past the run's last point
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (k, status)


def _plain_records(run: Path) -> list[dict[str, Any]]:
    """The metrics records without what is timed (steps/s varies from run to run)."""
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        out.append({k: v for k, v in record.items() if k not in ("steps_per_s", "time", "elapsed")})
    return out


def _check_killed_runs(tmp_path: Path, name: str, start: Any, resume: Any, points: int, seed: int) -> None:
    """A run killed at `points` seeded points each, then resumed (or, killed before it was
    made, started again: what the error says), ends bit for bit as the uninterrupted one."""
    counter = KillPoints()
    ref = tmp_path / f"{name}-ref"
    undo: list[tuple[Any, str, Any]] = []
    try:
        counter.install(lambda obj, attr, value: (undo.append((obj, attr, getattr(obj, attr))),
                                                  setattr(obj, attr, value)))
        start(ref)
    finally:
        for obj, attr, value in reversed(undo):
            setattr(obj, attr, value)
    assert counter.count >= points, counter.count
    ref_tensors, ref_state = final_state(ref)
    chosen = sorted(random.Random(seed).sample(range(1, counter.count + 1), points))
    for k in chosen:
        run = tmp_path / f"{name}-{k}"
        _killed_at(k, lambda: start(run))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NasflowWarning)  # 'taking over the lock of process ...'
            if (run / "config.json").is_file():
                assert resume(run), k
            else:
                assert start(run), k
        tensors, state = final_state(run)
        assert tensors.keys() == ref_tensors.keys(), k
        for key in ref_tensors:
            assert torch.equal(tensors[key], ref_tensors[key]), (name, k, key)
        assert state["step"] == ref_state["step"]
        assert _plain_records(run) == _plain_records(ref), (name, k)
        assert not (run / ".lock").exists(), k


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the killed runs are forked children")
def test_a_search_killed_at_seeded_points_resumes_exactly(tmp_path: Path) -> None:
    config = fast_config(steps=8, warmup=2, checkpoint_every=3, log_every=2, snapshot_steps=[4])

    def start(run: Path) -> bool:
        return run_search(config, run, space=planted_space(), task=PlantedTask()).finished

    def resume(run: Path) -> bool:
        return run_search(config, run, task=PlantedTask(), resume=True).finished

    _check_killed_runs(tmp_path, "search", start, resume, points=20, seed=25)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the killed runs are forked children")
def test_a_training_killed_at_seeded_points_resumes_exactly(tmp_path: Path) -> None:
    from test_train import fast, planted_arch

    from nasflow.train.loop import run_train

    config = fast(steps=8, validate_every=4, log_every=2, checkpoint_every=3)

    def start(run: Path) -> bool:
        return run_train(config, run, arch=planted_arch(), task=PlantedTask()).finished

    def resume(run: Path) -> bool:
        return run_train(config, run, task=PlantedTask(), resume=True).finished

    _check_killed_runs(tmp_path, "train", start, resume, points=20, seed=26)


def _model_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "weights.safetensors"))


def test_disk_full_at_every_atomic_write_of_a_training_then_resume_is_exact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A training's writes (config, space, checkpoints, best/ at each better validation, model/
    at the end, each metrics line) each fail once as a full disk does: one line naming the file
    and that --resume continues; once space returns the run resumes and ends as an
    uninterrupted one (its checkpoint, metrics, best/ and model/)."""
    from test_train import fast, planted_arch

    from nasflow.train.loop import run_train
    from nasflow.train.run_dir import TrainRunDir

    config = fast(steps=6, validate_every=2, log_every=2, checkpoint_every=3)
    counter = DiskFull(monkeypatch, appends=True)
    run_train(config, tmp_path / "ref", arch=planted_arch(), task=PlantedTask())
    writes = counter.calls
    # config, space, 2 checkpoints, best/ (3 files) at each better validation, model/ (3 files), 6 metrics lines
    assert writes >= 18
    for k in range(1, writes + 1):
        run = tmp_path / f"full{k}"
        DiskFull(monkeypatch, fail_at=k, appends=True)
        with pytest.raises(OSError) as failed:
            run_train(config, run, arch=planted_arch(), task=PlantedTask())
        line = explain_os_error(failed.value)
        assert line is not None and "no space left" in line, (k, failed.value)
        # what it says to do: resume a run made (config.json written), else the same command again
        assert (f"--resume --out {run}" if (run / "config.json").is_file() else "run the command again") in line, line
        assert f"writing '{run}{os.sep}" in line, (k, line)  # which file: the run's, named
        if "metrics.jsonl" in line:  # appended, not replaced: its size is not what a write needs
            assert "the last one took" not in line, line
        assert not list(run.rglob(".*.tmp")), k  # no partial file left behind
        DiskFull(monkeypatch)  # space returns
        if (run / "config.json").is_file():  # what the one line says: run it again with --resume
            assert run_train(config, run, task=PlantedTask(), resume=True).finished, k
        else:  # it failed making the run (nothing is left of it): the same command again
            assert not run.exists(), k
            assert run_train(config, run, arch=planted_arch(), task=PlantedTask()).finished, k
        same_run(run, tmp_path / "ref", TrainRunDir)
        for model in ("model", "best"):
            got, want = _model_tensors(run / model), _model_tensors(tmp_path / "ref" / model)
            assert got.keys() == want.keys() and all(torch.equal(got[n], want[n]) for n in want), (k, model)
            meta, ref_meta = (json.loads((r / model / "meta.json").read_text()) for r in (run, tmp_path / "ref"))
            assert (meta["steps"], meta["valid"], meta.get("best")) == \
                (ref_meta["steps"], ref_meta["valid"], ref_meta.get("best")), (k, model)


def test_train_on_a_full_disk_says_so_in_one_line_and_resume_continues(
        inputs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`nasflow train` whose checkpoint meets a full disk: one line naming it and --resume;
    after space returns `nasflow train --resume --out RUN` ends the run."""
    run = tmp_path / "run"
    command = ["train", inputs["arch"], "--steps", "4", "--batch", "8", "--checkpoint-every", "2", "--device", "cpu",
               "-q", "--out", str(run)]
    DiskFull(monkeypatch, fail_at=3)  # space.yaml, config.json, then the checkpoint at step 2
    code, err = cli(command, capsys)
    one_line(code, err, f"no space left on the disk writing '{run / 'checkpoint.safetensors'}'", "free some space",
             "--resume")
    DiskFull(monkeypatch)
    code, err = cli(["train", "--resume", "--out", str(run), "-q"], capsys)
    assert code == 0, err
    assert int(checkpoint.load_checkpoint(run / "checkpoint.safetensors")[1]["step"]) == 4
    assert (run / "model" / "weights.safetensors").is_file()
