"""Distributed search on 2 gloo processes (CPU, 1 thread each) on the planted space.

One spawn of 2 processes runs every distributed scenario in turn (starting processes is the
slow part); the parent then checks the result against single-process runs:
  - a 2-rank MiLeNAS search equals a single process with the same global batch (arch params
    and weights to float tolerance), with the task sharding its own batches or the engine
    cutting each rank's share of the global batch;
  - only rank 0 wrote files (rank 1's file-system writes are audited);
  - a 2-rank run stopped at a step and resumed on 2 ranks ends where an uninterrupted one does.
"""
from __future__ import annotations

import faulthandler
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from spawn_ranks import as_rank, spawn_ranks
from synthetic import GlobalBatchTask, PlantedTask, fast_config, planted_space

from nasflow.runs.distributed import DistContext, _shard, cleanup, setup, single
from nasflow.errors import NasflowError
from nasflow.search.run_dir import RunDir
from nasflow.search.loop import run_search

WORLD = 2
STEPS, STOP = 12, 7


def config(**changes: Any):
    # Warm-up, then MiLeNAS steps; a snapshot and checkpoints inside the run.
    return fast_config(**{"strategy": "milenas", "steps": STEPS, "warmup": 4, "batch_size": 8,
                          "log_every": 4, "checkpoint_every": 5, "snapshot_steps": [8], **changes})



def final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    """Weights and arch params of a finished run, as its checkpoint holds them."""
    tensors, _ = RunDir(run_dir).load_checkpoint()
    return tensors


def _audit_writes(root: str, seen: list[str]) -> None:
    """Record every file-system write (open for writing, mkdir, rename, remove) under `root`."""
    def hook(event: str, args: tuple) -> None:
        if event == "open":
            paths, mode = args[:1], args[1]
            writing = isinstance(mode, str) and any(c in mode for c in "wax+")
            writing |= isinstance(mode, int) and bool(mode & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        elif event in ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.truncate"):
            paths, writing = args[:2] if event == "os.rename" else args[:1], True  # rename: from, to
        else:
            return
        for path in paths:
            if writing and isinstance(path, (str, os.PathLike)) and str(path).startswith(root):
                seen.append(f"{event} {path}")

    sys.addaudithook(hook)


def _worker(rank: int, port: int, tmp: str) -> None:
    faulthandler.enable(all_threads=True)  # a crash in C++ (gloo) still shows where Python was
    as_rank(rank, port, WORLD)
    runs = os.path.join(tmp, "runs")
    writes: list[str] = []
    _audit_writes(runs, writes)
    ctx = setup("cpu")
    try:
        assert ctx == DistContext(rank, WORLD, rank, torch.device("cpu")) and ctx.enabled
        space = planted_space()
        full = run_search(config(), f"{runs}/full", space=space, task=PlantedTask(keep=1.0), ctx=ctx)
        run_search(config(), f"{runs}/global", space=space, task=GlobalBatchTask(keep=1.0), ctx=ctx)
        # keep=0.9: the loss draws pixel masks from each rank's RNG, which resume must restore.
        run_search(config(), f"{runs}/straight", space=space, task=PlantedTask(), ctx=ctx)
        stopped = run_search(config(), f"{runs}/resumed", space=space, task=PlantedTask(), ctx=ctx,
                             stop_at=STOP)
        resumed = run_search(config(), f"{runs}/resumed", task=PlantedTask(), ctx=ctx, resume=True)
        out = {"full_softmax": full.softmax, "full_genotype": str(full.genotype),
               "stopped": [stopped.step, stopped.finished], "resumed": [resumed.step, resumed.finished]}
    finally:
        cleanup(ctx)
    # Written outside runs/, after the audit of the runs.
    Path(tmp, f"rank{rank}.json").write_text(json.dumps({**out, "writes": writes}))


@pytest.fixture(scope="module")
def dist_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("dist")
    return tmp, spawn_ranks(_worker, tmp, WORLD)


@pytest.mark.parametrize("name, task", [("full", PlantedTask), ("global", GlobalBatchTask)])
def test_two_ranks_equal_one_process_with_the_same_global_batch(dist_runs, tmp_path, name, task):
    tmp, ranks = dist_runs
    single_run = run_search(config(), tmp_path / "single", space=planted_space(), task=task(keep=1.0))
    got, want = final_state(tmp / "runs" / name), final_state(single_run.run_dir)
    assert got.keys() == want.keys() and any(k.startswith("arch.") for k in got)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)
    # The arch did move (else equality would say nothing) and both ranks hold the same.
    start = RunDir(single_run.run_dir).read_metrics()[0]["weights"]
    assert start != single_run.softmax
    for r in range(WORLD):
        for label, p in ranks[r]["full_softmax"].items():
            assert p == pytest.approx(ranks[0]["full_softmax"][label], abs=0)
    # Logged losses are the mean over ranks: the single process's, to float tolerance.
    records = RunDir(tmp / "runs" / name).read_metrics()
    single_records = RunDir(single_run.run_dir).read_metrics()
    assert [r["step"] for r in records] == [r["step"] for r in single_records] == [0, 4, 8, 12]
    for a, b in zip(records[1:], single_records[1:]):
        assert a["losses"] == pytest.approx(b["losses"], rel=1e-4)


def test_only_rank_0_writes(dist_runs):
    tmp, ranks = dist_runs
    assert ranks[1]["writes"] == []
    # The audit does see writes: rank 0 made the run directories, metrics and checkpoints.
    written = "\n".join(ranks[0]["writes"])
    for name in ("full", "global", "straight", "resumed"):
        assert f"runs/{name}/metrics.jsonl" in written and f"runs/{name}/checkpoint.safetensors" in written
    assert "runs/full/snapshots/step_000008.safetensors" in written
    assert sorted(p.name for p in (tmp / "runs").iterdir()) == ["full", "global", "resumed", "straight"]


def test_resumed_distributed_run_continues_to_the_same_result(dist_runs):
    tmp, ranks = dist_runs
    for r in ranks:
        assert r["stopped"] == [STOP, False] and r["resumed"] == [STEPS, True]
    got, want = final_state(tmp / "runs" / "resumed"), final_state(tmp / "runs" / "straight")
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6, msg=key)
    # The metrics are the same records, none duplicated by the resume.
    a = RunDir(tmp / "runs" / "resumed").read_metrics()
    b = RunDir(tmp / "runs" / "straight").read_metrics()
    assert [r["step"] for r in a] == [r["step"] for r in b] == [0, 4, 8, 12]
    for x, y in zip(a, b):
        assert x["genotype"] == y["genotype"] and x["weights"].keys() == y["weights"].keys()
        for label in x["weights"]:  # approx() takes flat containers only (pytest >= 9.2)
            assert x["weights"][label] == pytest.approx(y["weights"][label], abs=1e-6)
        # A record averages the losses since the last one or since the resume: the record
        # at 8 covers steps 8 only in the resumed run (stopped at 7), 5..8 in the other.
        if x["step"] != 8:
            assert x["losses"] == pytest.approx(y["losses"], rel=1e-6)
    # Each rank's own RNG and data state went into the checkpoint.
    _, state = RunDir(tmp / "runs" / "resumed").load_checkpoint()
    assert len(state["ranks"]) == WORLD


def test_plot_of_a_distributed_run_draws_rank_0s_records(dist_runs):
    """`nasflow plot` on a run stopped and resumed on 2 ranks: one record per logged step, and
    the last plotted softmax is the checkpoint's (every rank holds the same arch)."""
    from nasflow.space.graph import build_graph
    from nasflow.search.run_dir import arch_logits
    from nasflow.viz.run_plots import figures, plot_run

    tmp, ranks = dist_runs
    run = tmp / "runs" / "resumed"
    result = plot_run(run, out=tmp / "plots-resumed", svg=False)
    assert sorted(p.name for p in result.files) == ["alpha.png", "beta.png", "genotype.png", "losses.png"]
    assert result.history.finished and result.history.decisions["m"].steps == [0, 4, 8, 12]
    arch, _ = RunDir(run).load_arch()
    logits = arch_logits(build_graph(RunDir(run).space()), arch)
    lines = [ln for ln in figures(result.history)["alpha"].axes[0].get_lines() if not ln.get_label().startswith("_")]
    assert [ln.get_ydata()[-1] for ln in lines] == pytest.approx(torch.softmax(logits["m"], -1).tolist(), abs=1e-6)


# --- the pieces, in one process -----------------------------------------------------------
def test_single_process_context_is_a_no_op(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    ctx = setup("cpu")
    assert ctx == single("cpu") and ctx.is_main and not ctx.enabled
    model = torch.nn.Linear(2, 2)
    from nasflow.runs.distributed import all_reduce_mean_, barrier, wrap
    assert wrap(model, ctx) is model
    t = torch.tensor([3.0])
    all_reduce_mean_([t], ctx)
    barrier(ctx)
    assert t.item() == 3.0


def test_shard_takes_every_world_size_th_sample():
    batch = ({"x": torch.arange(6), "meta": "kept"}, [torch.arange(6) * 10])
    inputs, (target,) = _shard(batch, rank=1, world=3)
    assert inputs["x"].tolist() == [1, 4] and inputs["meta"] == "kept" and target.tolist() == [10, 40]
    with pytest.raises(NasflowError, match="batch of 2 samples cannot be shared by 3 processes"):
        _shard(torch.zeros(2), rank=0, world=3)


def test_batch_size_must_split_over_the_ranks(tmp_path):
    ctx = DistContext(rank=0, world_size=3, local_rank=0, device=torch.device("cpu"))
    with pytest.raises(NasflowError, match="batch size 8 does not split over 3 processes"):
        run_search(config(), tmp_path / "run", space=planted_space(), task=PlantedTask(), ctx=ctx)
    assert not (tmp_path / "run").exists()


def test_torchrun_env_with_bad_values_names_the_variable(monkeypatch):
    env = dict(RANK="zero", WORLD_SIZE="2", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="1")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(NasflowError, match="RANK='zero' is not an integer"):
        setup("cpu")


# --- the documented command -----------------------------------------------------------------
def test_torchrun_cli_search_equals_the_single_process_cli(tmp_path, monkeypatch):
    """`torchrun --standalone --nproc-per-node 2 -m nasflow.cli.main search ...` as the README says."""
    import subprocess

    from typer.testing import CliRunner

    from nasflow.cli.main import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "planted.yaml").write_text(planted_space(task="synthetic:PlantedTask").to_yaml())
    args = ["search", "planted.yaml", "--steps", "10", "--warmup", "3", "--batch", "8", "--device", "cpu",
            "--lr", "1e-2", "--arch-lr", "3e-2", "--task-opt", "keep=1.0", "--snapshot-steps", "none",
            "--log-every", "5", "-q"]
    tests_dir = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": tests_dir, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD),
           "-m", "nasflow.cli.main", *args, "--out", "dist"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("run directory:") == 1  # rank 0 alone reports
    single_run = CliRunner().invoke(app, [*args, "--out", "single"])
    assert single_run.exit_code == 0, single_run.output
    got, want = final_state(tmp_path / "dist"), final_state(tmp_path / "single")
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)
