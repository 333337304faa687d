"""`--executor ray`: a population of searches as Ray tasks (nasflow/search/ray_executor.py).

On a local Ray of 2 CPUs and tiny searches of the planted task: 2 seeds on Ray equal the
local executor's runs (tensors, metrics, genotypes, report); a worker killed mid-search
(os._exit after a checkpoint) is resubmitted, continues from that checkpoint and ends bit for
bit as an uninterrupted run, the population's record and report naming the restart; the same
command run again on a finished population writes nothing; each run gets a fresh worker; a
sweep and --seeds through the command line; `derive --budget --executor ray` equal to scoring
here; --memory-per-run as each task's memory, and its bad values one line. Skipped, saying
so, where Ray is not installed; without it `--executor ray` is one line saying how to install it.
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
from nasflow.runs.population import POPULATION_FILE, PopulationRecord
from nasflow.runs.ray_tasks import INSTALL, connect
from nasflow.runs.population_ray import RayOptions
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
def test_each_run_gets_a_fresh_worker(local_ray, tmp_path):
    """A worker serves one run and exits: a run never inherits what another left in its process
    (a Ctrl-C'd import half done: "module 'sympy.core' has no attribute 'symbol'" on the
    two-node cluster)."""
    fresh = config(steps=2, warmup=1, task="worker_task:FreshWorkerTask")
    # One at a time: Ray hands the second run the worker the first has just left, unless it exited.
    outcomes = run_seeds(fresh, tmp_path, [0, 1], space=planted_space(), executor="ray", ray=ONE_CPU, parallel=1)
    assert [(o.finished, o.error) for o in outcomes] == [(True, None)] * 2


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
    from nasflow.runs import ray_tasks
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


def test_derive_budgets_on_ray_without_ray_is_one_line(monkeypatch, tmp_path):
    from nasflow.strategies.subnets import pick_subnets

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(NasflowError) as exc:
        pick_subnets(tmp_path / "run", ["params=3k"], executor="ray")
    assert str(exc.value) == INSTALL


# --- derive --budget on Ray, and --memory-per-run ---------------------------------------------
@pytest.fixture(scope="module")
def width_run(tmp_path_factory):
    """A tiny sandwich run of test_values' width space: a supernet to pick subnets from."""
    from test_values import SPACE, WidthTask

    from nasflow.search.loop import run_search
    from nasflow.space.schema import Space
    from nasflow.tasks.contract import TASKS, register_task

    root = tmp_path_factory.mktemp("widths")
    (root / "widths.yaml").write_text(SPACE)
    task = WidthTask()
    if task.name not in TASKS:
        register_task(task.name)(type(task))
    evolution = {"population": 3, "generations": 2, "parents": 2}
    config = fast_config(strategy="sandwich", steps=6, warmup=2, batch_size=2, task=task.name,
                         strategy_options=evolution)
    run_search(config, root / "run", space=Space.from_yaml(root / "widths.yaml"), task=task)
    return root / "run"


def subnets_of(out: Path) -> dict:
    """subnets.json, each model named by its folder under `out` (the two commands' outs differ)."""
    data = json.loads((out / "subnets.json").read_text())
    for row in data["subnets"]:
        row["model"] = str(Path(row["model"]).relative_to(out))
    return data


@needs_ray
def test_derive_budgets_score_their_candidates_on_ray(local_ray, width_run, tmp_path, monkeypatch):
    """derive --budget --executor ray: the evolutions' candidates scored as Ray tasks give the
    same subnets, scores, inherited weights and subnets.json as scoring them here."""
    from safetensors.torch import load_file

    from nasflow.cli.main import app
    from nasflow.runs import ray_tasks
    from nasflow.strategies.subnets import pick_subnets

    budgets = ["params=3k", "params=12k"]
    here = pick_subnets(width_run, budgets, tmp_path / "here")
    mapped = []
    plain_map = ray_tasks.RayMap.map
    monkeypatch.setattr(ray_tasks.RayMap, "map", lambda self, items: mapped.append(len(items)) or plain_map(self, items))
    result = CliRunner().invoke(app, ["derive", str(width_run), *[a for b in budgets for a in ("--budget", b)],
                                      "--out", str(tmp_path / "ray"), "--executor", "ray", "--cpus-per-run", "1",
                                      "--memory-per-run", "64M"])
    assert result.exit_code == 0, result.output
    assert len(mapped) >= 3 and sum(mapped) >= 6  # two generations per budget, each one map on Ray
    assert subnets_of(tmp_path / "ray") == subnets_of(tmp_path / "here")
    assert [s.score for s in here] == [row["mse"] for row in subnets_of(tmp_path / "ray")["subnets"]]
    for s in here:
        there = tmp_path / "ray" / s.model_dir.parent.name
        for name in ("arch.yaml", "genotype.json"):
            assert (there / name).read_text() == (s.model_dir.parent / name).read_text()
        got, want = load_file(there / "model" / "weights.safetensors"), load_file(s.model_dir / "weights.safetensors")
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


@needs_ray
def test_memory_per_run_is_each_task_s_memory(local_ray, tmp_path, monkeypatch):
    from nasflow.runs import population_ray
    from nasflow.runs.ray_tasks import parse_memory, task_resources

    asked = []
    plain = population_ray._resources
    monkeypatch.setattr(population_ray, "_resources", lambda *a: asked.append(plain(*a)) or asked[-1])
    options = RayOptions(cpus_per_run=1, memory_per_run=parse_memory("64M"))
    [outcome] = run_seeds(config(steps=4), tmp_path / "ray", [0], space=planted_space(), executor="ray", ray=options)
    assert outcome.finished and asked == [{"num_cpus": 1, "num_gpus": 0.0, "memory": 64 << 20}]

    @ray.remote
    def assigned() -> dict:
        return ray.get_runtime_context().get_assigned_resources()

    assert ray.get(assigned.options(**asked[0]).remote()) == {"CPU": 1.0, "memory": float(64 << 20)}
    assert "memory" not in task_resources(1, 0, None)  # not given: Ray reserves none
    # More than any node has: one line, not a task queued for ever.
    with pytest.raises(NasflowError, match=r"--memory-per-run 1024.0 TB: no node of the Ray cluster has that much"):
        run_seeds(config(), tmp_path / "big", [0], space=planted_space(), executor="ray",
                  ray=RayOptions(cpus_per_run=1, memory_per_run=1 << 50))
    from nasflow.strategies.subnets import pick_subnets

    with pytest.raises(NasflowError, match="no node of the Ray cluster has that much"):
        pick_subnets(seed_dir(tmp_path / "ray", 0), ["params=1G"], tmp_path / "sub", executor="ray",
                     ray=RayOptions(memory_per_run=1 << 50))


def test_memory_per_run_bad_values_are_one_line(tmp_path, monkeypatch, capsys):
    from nasflow.cli.main import run as cli_run

    def one_line(args: list[str], words: str) -> None:
        with pytest.raises(SystemExit) as done:
            cli_run(args)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert done.value.code == 2 and len(lines) == 1 and words in " ".join(err.split()), err

    monkeypatch.chdir(tmp_path)
    (tmp_path / "planted.yaml").write_text(planted_space(task=TASK).to_yaml())
    for cmd in (["sweep", "planted.yaml", "--gamma", "0,2", "--out", "sw"],
                ["search", "planted.yaml", "--seeds", "0,1", "--out", "s"],
                ["train", "a.yaml", "b.yaml"]):
        one_line([*cmd, "--executor", "ray", "--memory-per-run", "2X", "-q"],
                 "--memory-per-run '2X' is not an amount of memory: give bytes with a unit, e.g. 512M or 2G")
        one_line([*cmd, "--memory-per-run", "2G", "-q"], "--memory-per-run need --executor ray")
    one_line(["derive", "nowhere", "--executor", "ray"], "give --budget")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["planted.yaml"]  # nothing written
