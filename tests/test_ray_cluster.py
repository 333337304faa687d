"""Populations on a simulated two-node Ray cluster (ray.cluster_utils.Cluster: a head and a
second node on this machine, one CPU each), tiny searches of the planted task.

- a 4-seed search population and a retraining of two of its architectures equal the local
  executor's runs exactly (tensors, metrics, report), and the same command again writes nothing;
- a 4-point sweep stopped as a whole (Ctrl-C in the driver after its first run ends) and
  started again with the same command finishes the rest, redoing none of it, and equals the
  local executor's sweep;
- `nasflow profile --check` on Ray: its architectures split over the two nodes, the rows
  those of the local check; a node of another device model refuses in one line;
- the second node removed while a run on it is mid-search: the run continues on the head
  from its checkpoint and ends bit-identical to an uninterrupted run; the record and the report
  say which run restarted and from which step.

Skipped, saying so, where Ray is not installed.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
from synthetic import fast_config, planted_space, same_run

from nasflow.search.derive_run import derive_run
from nasflow.search.multiseed import run_seeds, seed_dir
from nasflow.runs.population import PopulationRecord, checkpoint_step
from nasflow.runs.population_ray import RayOptions
from nasflow.search.report import build_report, expand_runs
from nasflow.search.sweep import gamma_values, run_sweep

try:
    import ray
    from ray.cluster_utils import Cluster
except ImportError:
    ray = None

pytestmark = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install 'nasflow[ray]')")
TASK = "synthetic:PlantedTask"
ONE_CPU = RayOptions(cpus_per_run=1)


def config(**changes):
    return fast_config(**{"steps": 8, "warmup": 2, "log_every": 4, "checkpoint_every": 4, "task": TASK, **changes})


@pytest.fixture(scope="module")
def cluster():
    """A head and one more node, one CPU each; this process joined as the driver."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    second = c.add_node(num_cpus=1)
    c.wait_for_nodes()
    # The workers import the tests' helpers (synthetic, hang_task) as this process does.
    ray.init(address=c.address, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}})
    yield c, second
    ray.shutdown()
    c.shutdown()


def report(folder: Path, restarts: bool = True) -> dict:
    got = build_report(expand_runs([folder])).to_json()
    for row in got["runs"]:
        row["run"] = Path(row["run"]).name
        if not restarts:
            row.pop("restarts", None)
    return got


def files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_seeds_and_their_retraining_equal_the_local_executor(cluster, tmp_path):
    from nasflow.search.retrain_targets import RETRAINED, targets
    from nasflow.train.population import run_population
    from nasflow.train.config import TrainConfig
    from nasflow.train.run_dir import TrainRunDir

    seeds = [0, 1, 2, 3]
    remote = run_seeds(config(), tmp_path / "ray", seeds, space=planted_space(), executor="ray", ray=ONE_CPU)
    local = run_seeds(config(), tmp_path / "local", seeds, space=planted_space(), parallel=1)
    assert [(o.seed, o.step, o.finished, o.error, o.restarts) for o in remote] == \
        [(o.seed, o.step, o.finished, o.error, []) for o in local] == [(s, 8, True, None, []) for s in seeds]
    for s in seeds:
        same_run(seed_dir(tmp_path / "ray", s), seed_dir(tmp_path / "local", s))
    assert report(tmp_path / "ray") == report(tmp_path / "local")
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(nodes) == 2

    # Retrain two of them on the cluster and here: the same models.
    train = TrainConfig(steps=4, batch_size=8, device="cpu", validate_every=2, log_every=2, task=TASK)
    for where in ("ray", "local"):
        for s in (0, 1):
            derive_run(seed_dir(tmp_path / where, s))
    found = {w: targets([seed_dir(tmp_path / w, s) for s in (0, 1)]) for w in ("ray", "local")}
    got = run_population([train] * 2, found["ray"], executor="ray", ray=RayOptions(cpus_per_run=1))
    want = run_population([train] * 2, found["local"])
    assert [(o.step, o.finished, o.error) for o in got] == [(o.step, o.finished, o.error) for o in want] == \
        [(4, True, None)] * 2
    for s in (0, 1):
        same_run(seed_dir(tmp_path / "ray", s) / RETRAINED, seed_dir(tmp_path / "local", s) / RETRAINED, TrainRunDir)

    # The same commands again: nothing run, not one file written.
    before = files(tmp_path / "ray")
    again = run_seeds(config(), tmp_path / "ray", seeds, space=planted_space(), executor="ray", ray=ONE_CPU)
    assert [(o.step, o.finished) for o in again] == [(8, True)] * 4
    assert [o.finished for o in run_population([train] * 2, found["ray"], executor="ray")] == [True, True]
    assert files(tmp_path / "ray") == before


def test_a_sweep_stopped_as_a_whole_continues_and_redoes_nothing(cluster, tmp_path):
    sweep = gamma_values([0.0, 1.0, 2.0, 4.0])
    swept = config(regularizer="params")

    def stop(outcome) -> None:  # Ctrl-C in the driver once the first run has ended
        raise KeyboardInterrupt

    # As the command runs it (no --parallel): all four submitted, one running per node, so the
    # stop finds the second run mid-search and a third perhaps just started by Ray on the freed
    # CPU, maybe in the middle of making its run folder (which the same command then takes again).
    with pytest.raises(KeyboardInterrupt):
        run_sweep(swept, tmp_path / "ray", sweep, space=planted_space(), executor="ray", ray=ONE_CPU, on_done=stop)
    first = PopulationRecord.load(tmp_path / "ray").runs
    done = [name for name, run in first.items() if run["finished"]]
    assert len(done) == 1
    kept = {name: files(tmp_path / "ray" / name) for name in done}
    started = [v.name for v in sweep if checkpoint_step(tmp_path / "ray" / v.name) is not None]

    results = run_sweep(swept, tmp_path / "ray", sweep, space=planted_space(), executor="ray", ray=ONE_CPU)
    assert [(v.name, o.step, o.finished, o.error) for v, o in results] == [(v.name, 8, True, None) for v in sweep]
    assert {name: files(tmp_path / "ray" / name) for name in done} == kept  # the finished run untouched
    record = PopulationRecord.load(tmp_path / "ray").runs
    for v, o in results:  # started runs continued (recorded), the finished one was not run again
        restarted = v.name in started and v.name not in done
        assert bool(record[v.name]["restarts"]) == restarted and bool(o.restarts) == restarted, v.name

    local = run_sweep(swept, tmp_path / "local", sweep, space=planted_space(), parallel=1)
    for v, _ in local:
        same_run(tmp_path / "ray" / v.name, tmp_path / "local" / v.name)
    # The same report but for the restarts it names.
    assert report(tmp_path / "ray", restarts=False) == report(tmp_path / "local", restarts=False)


def test_profile_check_spreads_its_architectures_over_the_nodes(cluster):
    from nasflow.hardware.check import check_table
    from nasflow.hardware.profile import profile_space
    from nasflow.search.latency_table import LatencyTableError
    from nasflow.space.graph import build_graph

    graph = build_graph(planted_space())
    table = profile_space(graph, (6, 10), warmup=0, reps=1, threads=1)
    here = check_table(graph, table, n=3, threads=1, warmup=0, reps=1)
    spread = check_table(graph, table, n=3, threads=1, warmup=0, reps=1, executor="ray", ray=ONE_CPU)
    # The same architectures in the same order, each timed (on one node or the other).
    assert [r.genotype for r in spread.rows] == [r.genotype for r in here.rows] and len(spread.rows) == 3
    assert [r.table_ms for r in spread.rows] == [r.table_ms for r in here.rows]
    assert all(r.measured_ms > 0 and r.predicted_ms > 0 for r in spread.rows)
    assert spread.drift > 0
    # A node of another device model than the table's refuses, in its one line.
    foreign = table.model_copy(update={"machine": table.machine.model_copy(update={"name": "another CPU"})})
    with pytest.raises(LatencyTableError, match="measured on cpu 'another CPU', this machine is"):
        check_table(graph, foreign, n=2, threads=1, warmup=0, reps=1, executor="ray", ray=ONE_CPU)


def _hold_until(started: str, marker: str, done: str) -> None:
    """Keep a CPU busy until `marker` exists, or `done` (the test's runs are over: it went
    wrong); `started` says it has begun. No clock: on a loaded machine Ray's workers take
    minutes to get that far."""
    Path(started).write_text("holding\n")
    while not Path(marker).exists() and not Path(done).exists():
        time.sleep(0.05)


def test_a_lost_node_s_run_continues_on_the_other_bit_identical(cluster, tmp_path):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    c, second = cluster
    marker, holding, done = tmp_path / "stalled", tmp_path / "holding", tmp_path / "done"
    # MiLeNAS: one loss per warm-up step, then two per step: loss 9 is in step 5, after the
    # checkpoint at step 4. A run on the second node stalls there; on the head it goes on.
    stalling = config(task="hang_task:HangOnceTask",
                      task_options={"hang_marker": str(marker), "hang_at": 9, "hang_node": second.node_id})
    # The head's CPU held until a run stalls, so the first run starts on the second node.
    on_head = NodeAffinitySchedulingStrategy(c.head_node.node_id, soft=False)
    hold = ray.remote(num_cpus=1)(_hold_until).options(scheduling_strategy=on_head).remote(
        str(holding), str(marker), str(done))
    while not holding.is_file():
        time.sleep(0.05)
    removed = []

    def remove_when_stalled() -> None:  # until the stall, or the runs' end (then it went wrong)
        while not marker.is_file() and not done.is_file():
            time.sleep(0.05)
        if marker.is_file():
            c.remove_node(second, allow_graceful=False)
            removed.append(marker.read_text().split()[0])

    remover = threading.Thread(target=remove_when_stalled, daemon=True)
    remover.start()
    restarts = []
    options = RayOptions(cpus_per_run=1, on_restart=lambda name, step, why: restarts.append((name, step, why)))
    try:
        outcomes = run_seeds(stalling, tmp_path / "ray", [5, 6], space=planted_space(), executor="ray", ray=options)
    finally:
        done.write_text("done\n")
    remover.join()
    ray.get(hold)
    assert removed == [second.node_id]  # the node went away with the run on it
    assert [(o.step, o.finished, o.error) for o in outcomes] == [(8, True, None)] * 2
    [(name, step, why)] = restarts
    assert step == 4 and ("NodeDiedError" in why or "WorkerCrashedError" in why), restarts
    lost = next(o for o in outcomes if o.restarts)
    assert lost.run_dir.name == name and lost.restarts == [4]
    # The same search without a stall (the marker exists now), here: equal bit for bit.
    alone = run_seeds(stalling, tmp_path / "local", [lost.seed], space=planted_space(), parallel=1)
    assert alone[0].finished
    same_run(lost.run_dir, seed_dir(tmp_path / "local", lost.seed))
    rows = {Path(r.run).name: r.restarts for r in build_report(expand_runs([tmp_path / "ray"])).runs}
    assert rows == {f"seed-{s}": ([4] if f"seed-{s}" == name else []) for s in (5, 6)}
