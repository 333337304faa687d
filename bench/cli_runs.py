"""What the by-hand experiments share: a nasflow command run in its own process, logged; a
timed row's medians and its ratios to the base row."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def nasflow(args: list[str], log: Path, threads: int = 1) -> str:
    """`nasflow ARGS` with OMP_NUM_THREADS=threads; its output appended to `log`, its stdout
    returned; a failure is one RuntimeError with the command's last line."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nasflow.cli.main", *args], capture_output=True, text=True, env=env)
    with log.open("a") as f:
        f.write(f"$ nasflow {' '.join(args)}  ({time.perf_counter() - start:.0f} s)\n{done.stdout}\n{done.stderr}\n")
    if done.returncode != 0:
        raise RuntimeError(f"nasflow {' '.join(args)} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return done.stdout


def add_medians(row: dict[str, Any]) -> None:
    """A timed row's median s/step and CPU s/step, from its "times" and "cpu_times"."""
    row["s_per_step"] = statistics.median(row["times"])
    row["cpu_s_per_step"] = statistics.median(row["cpu_times"])


def add_ratios(row: dict[str, Any], base: dict[str, Any]) -> None:
    """The row's s/step and CPU s/step over the base row's (< 1: faster than it)."""
    row["ratio"] = row["s_per_step"] / base["s_per_step"]
    row["cpu_ratio"] = row["cpu_s_per_step"] / base["cpu_s_per_step"]
