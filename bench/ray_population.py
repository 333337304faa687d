"""A population on a simulated two-node Ray cluster against the local executor, same CPU count.

    python bench/ray_population.py [--runs 4] [--steps 300] [--channels 16] [--size 32]

Both executors search the same seeds of the planted task (tests/synthetic.py) with one CPU
per run and two runs at a time: local, two spawned processes of one thread each (`--parallel
2`); Ray, a head and a second node of one CPU each (ray.cluster_utils.Cluster, as
tests/test_ray_cluster.py), one task per run. Prints the machine, load, each wall time, the
cluster's start (apart: a cluster outlives its populations) and the overhead per run; checks
that both executors' checkpoints are equal. Run by hand; figures in docs/distributed.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import torch  # noqa: E402
from synthetic import fast_config, planted_space  # noqa: E402

from nasflow.search.multiseed import run_seeds, seed_dir  # noqa: E402
from nasflow.runs.population_ray import RayOptions  # noqa: E402
from nasflow.search.run_dir import RunDir  # noqa: E402


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "?")
    return f"{model}, {os.cpu_count()} cores, {platform.system()}"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    import ray
    from ray.cluster_utils import Cluster

    config = fast_config(steps=args.steps, warmup=args.steps // 5, log_every=50, checkpoint_every=100,
                         task="synthetic:PlantedTask",
                         task_options={"channels": args.channels, "size": args.size})
    space = planted_space(channels=args.channels)
    seeds = list(range(args.runs))
    root = Path(tempfile.mkdtemp(prefix="ray-population-"))
    print(f"machine: {machine()}; torch {torch.__version__}, ray {ray.__version__}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"population: {args.runs} searches of the planted task, {args.steps} steps, C={args.channels}, "
          f"{args.size}x{args.size}; 1 CPU per run, 2 at a time")

    print(f"local executor (--parallel 2, 1 thread each): load before {load()}")
    start = time.perf_counter()
    local = run_seeds(config, root / "local", seeds, space=space, parallel=2)
    t_local = time.perf_counter() - start
    assert all(o.finished for o in local)
    print(f"  wall {t_local:.1f} s; load after {load()}")

    print(f"Ray, two nodes of 1 CPU each: load before {load()}")
    start = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}})
    t_cluster = time.perf_counter() - start
    try:
        start = time.perf_counter()
        remote = run_seeds(config, root / "ray", seeds, space=space, executor="ray", ray=RayOptions(cpus_per_run=1))
        t_ray = time.perf_counter() - start
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert all(o.finished for o in remote)
    print(f"  cluster start {t_cluster:.1f} s (apart); population wall {t_ray:.1f} s; load after {load()}")

    for s in seeds:
        a, b = RunDir(seed_dir(root / "ray", s)).load_checkpoint()[0], RunDir(seed_dir(root / "local", s)).load_checkpoint()[0]
        assert all(torch.equal(a[k], b[k]) for k in b), f"seed {s} differs"
    print(f"checkpoints equal for all {args.runs} seeds")
    print(f"overhead per run (Ray minus local, wall, over {args.runs} runs): {(t_ray - t_local) / args.runs:+.2f} s "
          f"({100 * (t_ray - t_local) / t_local:+.1f}% of the local wall)")


if __name__ == "__main__":
    main()
