"""The default DLSR search step of two or more commits, interleaved (by hand, never in tests):

    python bench/ab_step.py 201c704 HEAD --rounds 3             # 1 thread, CPU s per step

On a shared machine two bench runs minutes apart differ by more than a small change saves;
interleaving the commits round by round lets a change of load hit them alike. Each commit's
tree is exported (git archive) to a temporary folder; each round runs every commit once, in a
fresh process with that tree's nasflow/ and bench/ first on the path (spaces/ and strategies/
come from the installed checkout): bench/search_step.py's StepBench, the bench's default row
(MiLeNAS, C48, batch 16, HR patch 64, x2, fused, channels-last, kept memory), one warm-up step
and `--steps` timed ones. Prints each run's median CPU s per step and its first loss, which
must agree across commits (the same numbers).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, statistics, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/bench"]
from search_step import StepBench
cfg = json.loads(sys.argv[2])
bench = StepBench(cfg)
cpu = [bench.step(i)[1] for i in range(cfg["steps"] + 1)][1:]
print(json.dumps({"cpu": cpu, "loss": bench.first_loss}))
"""


def export(commit: str, into: Path) -> Path:
    """The commit's tree, extracted under `into`."""
    tree = into / commit.replace("/", "_")
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commits", nargs="+", help="git revisions to compare")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per run (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--channels", type=int, default=48)
    args = parser.parse_args()
    cfg = {"batch": args.batch, "channels": args.channels, "patch": 64, "scale": 2, "steps": args.steps, "keep_memory": True,
           "threads": args.threads, "fuse": True, "channels_last": True, "reuse_forward": False, "amp": "none"}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    medians: dict[str, list[float]] = {c: [] for c in args.commits}
    with tempfile.TemporaryDirectory(prefix="nasflow-ab-") as tmp:
        trees = {c: export(c, Path(tmp)) for c in args.commits}
        for r in range(args.rounds):
            for commit, tree in trees.items():
                proc = subprocess.run([sys.executable, "-c", CHILD, str(tree), json.dumps(cfg)], capture_output=True,
                                      text=True, env=env, cwd=tmp)
                if proc.returncode != 0:
                    sys.exit(f"{commit}: {(proc.stderr.strip().splitlines() or ['failed'])[-1]}")
                got = json.loads(proc.stdout.strip().splitlines()[-1])
                medians[commit].append(statistics.median(got["cpu"]))
                steps = " ".join(f"{c:.2f}" for c in got["cpu"])
                print(f"round {r + 1} {commit:>12s}: {medians[commit][-1]:.3f} CPU s/step (steps {steps}), "
                      f"first loss {got['loss']:.6f}", flush=True)
    print(f"median of the rounds' medians, {args.threads} thread(s), CPU s per step:")
    for commit, m in medians.items():
        print(f"  {commit:>12s} {statistics.median(m):.3f}  ({' '.join(f'{v:.2f}' for v in m)})")


if __name__ == "__main__":
    main()
