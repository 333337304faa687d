"""`--executor ray`: a population of searches as Ray tasks (nasflow/search/ray_executor.py).

On a local Ray of 2 CPUs and tiny searches of the planted task: 2 seeds on Ray equal the
local executor's runs (tensors, metrics, genotypes, report); a worker killed mid-search
(os._exit after a checkpoint) is resubmitted, continues from that checkpoint and ends bit for
bit as an uninterrupted run, the population's record and report naming the restart; the same
command run again on a finished population writes nothing; a sweep and --seeds through the
command line. Skipped, saying so, where Ray is not installed; without it `--executor ray` is
one line saying how to install it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from synthetic import fast_config, planted_space
from typer.testing import CliRunner

from nasflow.errors import NasflowError
from nasflow.search.multiseed import run_seeds, seed_dir
from nasflow.search.population import POPULATION_FILE, PopulationRecord
from nasflow.search.ray_executor import INSTALL, RayOptions, connect
from nasflow.search.report import build_report, expand_runs
from nasflow.search.run_dir import RunDir

try:
    import ray
except ImportError:
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install 'nasflow[ray]')")
TASK = "synthetic:PlantedTask"  # found by module:attr in Ray's workers too
ONE_CPU = RayOptions(cpus_per_run=1)  # two runs at a time on the 2-CPU Ray


def config(**changes):
    return fast_config(**{"steps": 8, "warmup": 2, "log_every": 4, "checkpoint_every": 4, "task": TASK, **changes})


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 2 CPUs for the whole file (starting one takes seconds)."""
    if ray is None:
        pytest.skip("Ray is not installed (pip install 'nasflow[ray]')")
    assert connect(None, num_cpus=2)  # workers get this process's sys.path (tests/ included)
    yield ray
    ray.shutdown()


def same_tensors(a: Path, b: Path) -> None:
    got, got_state = RunDir(a).load_checkpoint()
    want, want_state = RunDir(b).load_checkpoint()
    assert got.keys() == want.keys() and got_state["step"] == want_state["step"]
    for key in want:
        assert torch.equal(got[key], want[key]), (a, key)


def records(run: Path) -> list[dict]:
    """metrics.jsonl without its timings."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "steps_per_s"} for line in lines]


def files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def populations(local_ray, tmp_path_factory):
    """Seeds 0 and 1 searched here (local executor) and as Ray tasks."""
    root = tmp_path_factory.mktemp("pop")
    local = run_seeds(config(), root / "local", [0, 1], space=planted_space(), parallel=1)
    remote = run_seeds(config(), root / "ray", [0, 1], space=planted_space(), executor="ray", ray=ONE_CPU)
    return root, local, remote


@needs_ray
def test_ray_equals_local(populations):
    root, local, remote = populations
    assert [(o.seed, o.step, o.finished, o.error, o.restarts) for o in remote] == \
        [(o.seed, o.step, o.finished, o.error, []) for o in local] == [(0, 8, True, None, []), (1, 8, True, None, [])]
    for seed in (0, 1):
        same_tensors(seed_dir(root / "ray", seed), seed_dir(root / "local", seed))
        assert records(seed_dir(root / "ray", seed)) == records(seed_dir(root / "local", seed))
    want = build_report(expand_runs([root / "local"])).to_json()
    got = build_report(expand_runs([root / "ray"])).to_json()
    for row in (*want["runs"], *got["runs"]):
        row["run"] = Path(row["run"]).name
    assert got == want
    assert PopulationRecord.load(root / "ray").runs == {
        "seed-0": {"finished": True, "restarts": []}, "seed-1": {"finished": True, "restarts": []}}
    assert not (root / "local" / POPULATION_FILE).exists()  # the local executor is as it was


@needs_ray
def test_finished_population_runs_nothing_again(populations):
    root, _, remote = populations
    before = files(root / "ray")
    again = run_seeds(config(), root / "ray", [0, 1], space=planted_space(), executor="ray", ray=ONE_CPU)
    assert [(o.seed, o.step, o.finished, o.error) for o in again] == [(o.seed, o.step, o.finished, o.error) for o in remote]
    assert files(root / "ray") == before  # not one file written or touched


@needs_ray
def test_a_stopped_population_continues_with_the_same_call(populations, tmp_path):
    root = populations[0]
    from nasflow.search.loop import run_search

    run_search(config(seed=0), seed_dir(tmp_path, 0), space=planted_space(), stop_at=4)  # stopped as a whole
    [outcome] = run_seeds(config(), tmp_path, [0], space=planted_space(), executor="ray", ray=ONE_CPU)
    assert (outcome.step, outcome.finished, outcome.restarts) == (8, True, [4])
    assert PopulationRecord.load(tmp_path).runs["seed-0"]["restarts"] == [
        {"step": 4, "reason": "the population was started again"}]
    same_tensors(seed_dir(tmp_path, 0), seed_dir(root / "local", 0))
    assert records(seed_dir(tmp_path, 0)) == records(seed_dir(root / "local", 0))


@needs_ray
def test_lost_worker_resumes_from_its_checkpoint_bit_exact(local_ray, tmp_path):
    marker = tmp_path / "crashed"
    # MiLeNAS: one loss per warm-up step, then two per step (train, valid): loss 9 is in step 5,
    # after the checkpoint at step 4.
    crashing = config(task="crash_task:CrashOnceTask", task_options={"crash_marker": str(marker), "crash_at": 9})
    restarts = []
    options = RayOptions(cpus_per_run=1, on_restart=lambda name, step, why: restarts.append((name, step, why)))
    [outcome] = run_seeds(crashing, tmp_path / "ray", [3], space=planted_space(), executor="ray", ray=options)
    assert marker.is_file()  # the worker did die
    assert (outcome.step, outcome.finished, outcome.error, outcome.restarts) == (8, True, None, [4])
    assert [(n, s) for n, s, _ in restarts] == [("seed-3", 4)] and "WorkerCrashedError" in restarts[0][2]
    # The same config searched here without a crash (the marker exists now): equal bit for bit.
    [alone] = run_seeds(crashing, tmp_path / "local", [3], space=planted_space(), parallel=1)
    assert alone.finished
    same_tensors(seed_dir(tmp_path / "ray", 3), seed_dir(tmp_path / "local", 3))
    assert records(seed_dir(tmp_path / "ray", 3)) == records(seed_dir(tmp_path / "local", 3))
    [row] = build_report(expand_runs([tmp_path / "ray"])).runs
    assert row.restarts == [4] and row.to_json()["restarts"] == [4]
    assert build_report(expand_runs([tmp_path / "local"])).runs[0].restarts == []


@needs_ray
def test_cli_sweep_and_seeds_on_ray(local_ray, tmp_path, monkeypatch):
    from nasflow.cli.main import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "planted.yaml").write_text(planted_space(task=TASK).to_yaml())
    runner = CliRunner()
    small = ["--steps", "6", "--warmup", "2", "--batch", "8", "--device", "cpu", "--executor", "ray",
             "--cpus-per-run", "1"]
    sweep = ["sweep", "planted.yaml", "--gamma", "0,2", "--regularizer", "params", "--out", "sw", *small]
    result = runner.invoke(app, sweep)  # with its progress display
    assert result.exit_code == 0, result.output
    assert "gamma 0: done" in result.output and "gamma 2: done" in result.output and "2 searches" in result.output
    before = files(tmp_path / "sw")
    result = runner.invoke(app, [*sweep, "-q"])  # the same command again: nothing to do
    assert result.exit_code == 0, result.output
    assert files(tmp_path / "sw") == before
    seeds = ["search", "planted.yaml", "--seeds", "5,6", "--snapshot-steps", "none", "--out", "s", "-q", *small]
    result = runner.invoke(app, seeds)
    assert result.exit_code == 0, result.output
    assert "seed 5: done" in result.output and "seed 6: done" in result.output
    assert RunDir("s/seed-6").config().seed == 6
    bad = runner.invoke(app, ["search", "planted.yaml", "--seeds", "1", "--ray-address", "auto", "--out", "x"])
    assert bad.exit_code != 0 and "--executor ray" in str(bad.exception or bad.output)


def test_without_ray_one_line_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(NasflowError) as exc:
        run_seeds(config(), tmp_path, [0], space=planted_space(), executor="ray")
    assert str(exc.value) == INSTALL and "pip install 'nasflow[ray]'" in INSTALL
    with pytest.raises(NasflowError, match="--executor must be one of local, ray"):
        run_seeds(config(), tmp_path, [0], space=planted_space(), executor="slurm")
    assert not any(tmp_path.iterdir())


@needs_ray
def test_spos_evolution_scores_its_candidates_on_ray(local_ray, tmp_path, monkeypatch):
    """SPOS's evolution with executor=ray scores each generation's new candidates as Ray tasks:
    the same scores, Pareto set and chosen architecture as scoring them here."""
    from nasflow.search import ray_tasks
    from nasflow.search.loop import run_search

    mapped = []
    plain_map = ray_tasks.RayMap.map
    monkeypatch.setattr(ray_tasks.RayMap, "map", lambda self, items: mapped.append(len(items)) or plain_map(self, items))

    def spos(executor: str):
        return config(strategy="spos", steps=4, warmup=1, strategy_options={
            "population": 6, "generations": 3, "parents": 2, "bn_batches": 1, "executor": executor})

    here = run_search(spos("local"), tmp_path / "local", space=planted_space())
    there = run_search(spos("ray"), tmp_path / "ray", space=planted_space())
    assert here.finished and there.finished
    got = json.loads((tmp_path / "ray" / "spos" / "evolution.json").read_text())
    want = json.loads((tmp_path / "local" / "spos" / "evolution.json").read_text())
    assert len(want["scored"]) > 6 and got == want  # three generations, every score equal
    assert sum(mapped) == len(got["scored"]) and len(mapped) == 3  # each generation's new ones, on Ray
    assert (tmp_path / "ray" / "chosen.json").read_text() == (tmp_path / "local" / "chosen.json").read_text()


def test_spos_on_ray_without_ray_is_one_line_before_the_search(monkeypatch, tmp_path):
    from nasflow.search.loop import run_search

    monkeypatch.setitem(sys.modules, "ray", None)
    spos = config(strategy="spos", steps=4, warmup=1, strategy_options={"population": 2, "executor": "ray"})
    with pytest.raises(NasflowError) as exc:
        run_search(spos, tmp_path / "run", space=planted_space())
    assert str(exc.value) == INSTALL and not (tmp_path / "run").exists()
